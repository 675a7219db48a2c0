# SupportDesk image: one image for the ASGI server (daphne) and the Celery worker.
FROM python:3.13-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

RUN apt-get update && apt-get install -y --no-install-recommends gettext curl \
    && rm -rf /var/lib/apt/lists/*
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# collectstatic needs settings to import; the real secret comes from the environment at run time.
RUN SECRET_KEY=build-only python manage.py collectstatic --no-input \
    && SECRET_KEY=build-only python manage.py compilemessages --ignore=.venv || true

RUN useradd --create-home --uid 1000 desk && mkdir -p /app/media /app/prometheus \
    && chown -R desk /app/media /app/prometheus
USER desk
EXPOSE 8000
CMD ["daphne", "--bind", "0.0.0.0", "--port", "8000", "--proxy-headers", "supportdesk.asgi:application"]
