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
RUN useradd --create-home app && mkdir -p /app/var && chown -R app /app/var
USER app
EXPOSE 8000
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3"]
