# One image for web, migrate and both workers (compose picks the command).
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 && rm -rf /var/lib/apt/lists/*
COPY requirements.txt requirements-gpu.txt ./
ARG WITH_GPU=1
RUN pip install -r requirements.txt && if [ "$WITH_GPU" = "1" ]; then pip install -r requirements-gpu.txt; fi
COPY . .
RUN SECRET_KEY=build FIELD_ENCRYPTION_KEY=$(python -m config.keys) python manage.py collectstatic --noinput -v 0
# The offline reference model, converted once at build time, outside var/ (which a volume may cover).
ENV EVAL_MODELS_DIR=/opt/models EVAL_DOWNLOADS_DIR=/opt/downloads
RUN if [ "$WITH_GPU" = "1" ]; then SECRET_KEY=build FIELD_ENCRYPTION_KEY=$(python -m config.keys) \
      python manage.py prepare_reference_model && rm -rf /opt/downloads; fi
RUN useradd --create-home app && mkdir -p /app/var && chown -R app /app/var
USER app
EXPOSE 8000
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3"]
