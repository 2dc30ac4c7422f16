# Railyard's web app and worker (one image, two commands). Build from the repository root:
#   docker build -t railyard:0.1.0 .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RAILYARD_VAR_DIR=/var/lib/railyard

RUN groupadd --gid 10002 railyard && useradd --uid 10002 --gid 10002 --no-create-home railyard \
    && mkdir -p /var/lib/railyard && chown railyard:railyard /var/lib/railyard

WORKDIR /opt/railyard
COPY requirements.txt ./
COPY trainer_image ./trainer_image
RUN pip install -r requirements.txt && rm -rf /root/.cache
COPY manage.py ./
COPY railyard_site ./railyard_site
COPY training ./training
COPY templates ./templates
COPY static ./static
RUN python manage.py collectstatic --noinput -v0

USER 10002:10002
EXPOSE 8000
# The web app; the worker runs the same image with: python manage.py run_worker
CMD ["gunicorn", "railyard_site.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
