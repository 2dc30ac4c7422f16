"""Railyard's only settings module; every deployment difference is an environment variable."""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from railyard_site.env import (
    database_from_url,
    env_bool,
    env_command,
    env_commands,
    env_int,
    env_list,
    env_rate,
    env_str,
    sqlite_database,
)
from railyard_trainer.vocabulary import FireKind, JobStatus, RunKind, RunStatus, choices

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("RAILYARD_VAR_DIR", str(BASE_DIR / "var"))).absolute()

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY", "railyard-insecure-development-key" if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY is not set. Set SECRET_KEY (or SECRET_KEY_FILE, the path of a file holding it) to a long "
        "random string, e.g. the output of: python -c 'import secrets; print(secrets.token_urlsafe(50))'. "
        "`make run` makes one under var/ for you; DEBUG=true uses an insecure development key."
    )
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# Behind HTTPS (RAILYARD_HTTPS=true): redirect plain HTTP, send HSTS, and keep cookies to HTTPS; each
# can be set on its own. Behind a proxy that ends TLS, SECURE_PROXY_SSL_HEADER=X-Forwarded-Proto says
# which header tells (trust it only when the proxy sets it).
HTTPS = env_bool("RAILYARD_HTTPS", False)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", HTTPS)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", HTTPS)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", HTTPS)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", HTTPS)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", HTTPS)
if proxy_header := env_str("SECURE_PROXY_SSL_HEADER"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + proxy_header.upper().replace("-", "_"), "https")
# Probes and scrapes reach the pods over plain HTTP, inside the cluster.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
# Every page's Content-Security-Policy (training.middleware): scripts and styles only from here, none
# inline but styles (plotly sets them on the elements it draws), nothing framing the dashboard.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "training",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "training.middleware.RefuseNulBytes",
    "training.middleware.ContentSecurityPolicy",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "railyard_site.urls"
WSGI_APPLICATION = "railyard_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL")
DATABASES = {
    "default": database_from_url(DATABASE_URL) if DATABASE_URL else sqlite_database(VAR_DIR / "railyard.sqlite3")
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
# Failed sign-ins from one address, or for one username, before both wait (training.throttles).
SIGN_IN_FAILURES = env_int("RAILYARD_SIGN_IN_FAILURES", 10, minimum=1)
SIGN_IN_LOCKOUT_SECONDS = env_int("RAILYARD_SIGN_IN_LOCKOUT_SECONDS", 900, minimum=1)
LOGIN_REDIRECT_URL = "runs"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"
# WhiteNoise serves the few static files from the app itself, so no separate web server is needed.
WHITENOISE_USE_FINDERS = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# A request body past this size is refused before it is parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("RAILYARD_MAX_REQUEST_BYTES", 256 * 1024, minimum=1024)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "training.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["training.auth.SignedIn"],
    # Per token (or signed-in user) and, for callers with neither, per address (behind
    # RAILYARD_NUM_PROXIES proxies, read from X-Forwarded-For); a caller past its rate gets a 429.
    "DEFAULT_THROTTLE_CLASSES": ["training.throttles.TokenRateThrottle", "rest_framework.throttling.AnonRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "token": env_rate("RAILYARD_THROTTLE_TOKEN", "6000/minute"),
        "anon": env_rate("RAILYARD_THROTTLE_ANON", "60/minute"),
    },
    "NUM_PROXIES": env_int("RAILYARD_NUM_PROXIES", 0, minimum=0),
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "training.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Railyard API",
    "DESCRIPTION": "Submit training requests, follow runs, fetch evaluations and artifacts.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "training.openapi.add_throttled_answers",
    ],
    # One name per choice set: a run's status and its events' old and new statuses are one.
    "ENUM_NAME_OVERRIDES": {
        f"{words.__name__}Enum": choices(words) for words in (RunStatus, JobStatus, RunKind, FireKind)
    },
    # Swagger UI and ReDoc from the installed sidecar package's static files, never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

Q_CLUSTER = {
    "name": "railyard",
    "orm": "default",
    "workers": env_int("RAILYARD_WORKER_PROCESSES", 2, minimum=1),
    "timeout": 600,
    "retry": 900,
    "poll": 0.5,
    "max_attempts": 1,
    "catch_up": False,
    "sync": env_bool("RAILYARD_SYNC_TASKS", False),
}

RAILYARD = {
    # "local" runs the trainer as subprocesses on this machine.
    "EXECUTOR": env_str("RAILYARD_EXECUTOR", "local"),
    # Every run's artifacts go under <store>/runs/<run id>/.
    "ARTIFACT_STORE": env_str("RAILYARD_ARTIFACT_STORE", "file://" + str(VAR_DIR / "artifacts")),
    # Relative `file` source paths are resolved against this directory.
    "DATA_DIR": Path(env_str("RAILYARD_DATA_DIR", str(VAR_DIR / "data"))).absolute(),
    # `file` sources may name only files under these directories (comma-separated; the data
    # directory by default). Nothing under /proc, /sys or /dev is ever read.
    "DATA_ROOTS": [Path(p).absolute() for p in env_list("RAILYARD_DATA_ROOTS", [])],
    # `s3` sources may name only objects under these (`s3://bucket/` or `s3://bucket/folder/`,
    # comma-separated); none: any bucket the credentials reach. A project may have its own of both.
    "S3_PREFIXES": env_list("RAILYARD_S3_PREFIXES", []),
    "WORK_DIR": Path(env_str("RAILYARD_WORK_DIR", str(VAR_DIR / "work"))).absolute(),
    "LOCAL_CONCURRENCY": env_int("RAILYARD_LOCAL_CONCURRENCY", 2, minimum=1),
    "RECONCILE_INTERVAL_SECONDS": env_int("RAILYARD_RECONCILE_INTERVAL", 2, minimum=1),
    # How long a worker's claim on work (dispatching, a job to launch or observe) outlives its last
    # renewal: a worker killed at any point hands its work over after this long.
    "LEASE_SECONDS": env_int("RAILYARD_LEASE_SECONDS", 30, minimum=2),
    # Prometheus: /metrics answers only a bearer of this token (unset: no /metrics); a worker serves
    # its own metrics on this port (0: none).
    "METRICS_TOKEN": env_str("RAILYARD_METRICS_TOKEN", ""),
    "WORKER_METRICS_PORT": env_int("RAILYARD_WORKER_METRICS_PORT", 0, minimum=0),
    "RUN_TIMEOUT_SECONDS": env_int("RAILYARD_RUN_TIMEOUT", 6 * 3600, minimum=60),
    # How long an Idempotency-Key keeps answering with the run it made (Stripe's 24 hours).
    "IDEMPOTENCY_KEY_TTL_HOURS": env_int("RAILYARD_IDEMPOTENCY_KEY_TTL_HOURS", 24, minimum=1),
    # Whether any signed-in user may create a project (and so a request naming an unknown project
    # creates it, its sender its maintainer); off, only users granted training.add_project may.
    "ANYONE_CREATES_PROJECTS": env_bool("RAILYARD_ANYONE_CREATES_PROJECTS", True),
    "TRAINER_COMMAND": env_command("RAILYARD_TRAINER_COMMAND", [sys.executable, "-m", "railyard_trainer"]),
    # The local executor's trainers of teams' images: a JSON object of image → command line, e.g.
    # {"registry.example.com/fraud/trainer:3": "/opt/venvs/fraud/bin/python -m railyard_trainer"}.
    "LOCAL_IMAGES": env_commands("RAILYARD_LOCAL_IMAGES"),
    # The Kubernetes executor (RAILYARD_EXECUTOR=kubernetes). The cluster is found through the
    # in-cluster service account, else KUBECONFIG or ~/.kube/config.
    "K8S_NAMESPACE": env_str("RAILYARD_K8S_NAMESPACE", "railyard"),
    "TRAINER_IMAGE": env_str("RAILYARD_TRAINER_IMAGE", "railyard-trainer:0.1.0"),
    "K8S_SERVICE_ACCOUNT": env_str("RAILYARD_K8S_TRAINER_SERVICE_ACCOUNT", ""),
    # Secrets whose keys become the trainer's environment (credentials only by reference).
    "K8S_ENV_FROM_SECRETS": env_list("RAILYARD_K8S_ENV_FROM_SECRETS", []),
    "K8S_BACKOFF_LIMIT": env_int("RAILYARD_K8S_BACKOFF_LIMIT", 1, minimum=0),
    "K8S_TTL_SECONDS_AFTER_FINISHED": env_int("RAILYARD_K8S_TTL_SECONDS_AFTER_FINISHED", 86400, minimum=60),
    # A launched run whose Job is missing this long is failed.
    "K8S_MISSING_GRACE_SECONDS": env_int("RAILYARD_K8S_MISSING_GRACE_SECONDS", 60, minimum=0),
    "K8S_REQUEST_TIMEOUT_SECONDS": env_int("RAILYARD_K8S_REQUEST_TIMEOUT", 10, minimum=1),
    "COMPUTE_RESOURCES": {
        "cpu": {
            "description": "General-purpose CPU node.",
            "requests": {"cpu": "2", "memory": "4Gi"},
            "limits": {"cpu": "4", "memory": "8Gi"},
            "node_selector": {},
            "tolerations": [],
            "affinity": {},
            # A run that runs out of memory here is retried once on this profile (`retry.on_oom`).
            "next": "highmem",
        },
        "highmem": {
            "description": "Memory-optimised node for large datasets.",
            "requests": {"cpu": "4", "memory": "32Gi"},
            "limits": {"cpu": "8", "memory": "64Gi"},
            "node_selector": {"railyard.dev/pool": "highmem"},
            "tolerations": [
                {"key": "railyard.dev/pool", "operator": "Equal", "value": "highmem", "effect": "NoSchedule"}
            ],
            "affinity": {},
        },
        "gpu": {
            "description": "One NVIDIA GPU.",
            "requests": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"},
            "limits": {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "1"},
            "node_selector": {"railyard.dev/pool": "gpu"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            # Prefer the newest GPUs when the pool mixes generations.
            "affinity": {
                "nodeAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 50,
                            "preference": {
                                "matchExpressions": [
                                    {
                                        "key": "nvidia.com/gpu.product",
                                        "operator": "In",
                                        "values": ["NVIDIA-H100-80GB-HBM3", "NVIDIA-H200"],
                                    }
                                ]
                            },
                        }
                    ]
                }
            },
        },
    },
    "DEFAULT_COMPUTE_RESOURCE": "cpu",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
