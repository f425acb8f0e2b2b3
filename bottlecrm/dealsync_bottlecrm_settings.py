"""Django settings for the BottleCRM server that dealsync's tests and demo run (SQLite, no Redis)."""

import os

from crm.settings import *  # noqa: F403

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["BOTTLECRM_DB"],
        "OPTIONS": {"timeout": 30},
    }
}
CELERY_BROKER_URL = "memory://"
CELERY_RESULT_BACKEND = "cache+memory://"
CELERY_TASK_ALWAYS_EAGER = True
MEDIA_ROOT = os.environ["BOTTLECRM_MEDIA"]
DEBUG = True
ALLOWED_HOSTS = ["*"]
SECRET_KEY = os.environ.get(
    "BOTTLECRM_SECRET_KEY", "dealsync-local-bottlecrm-secret-key-not-for-production-0123456789"
)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DOMAIN_NAME = "http://127.0.0.1"
# BottleCRM logs to server.log and security_audit.log in the working directory: keep them with the
# server's database instead of in whatever folder it was started from.
_LOG_DIR = os.path.dirname(os.environ["BOTTLECRM_DB"])
LOGGING["handlers"]["logfile"]["filename"] = os.path.join(_LOG_DIR, "server.log")  # noqa: F405
LOGGING["handlers"]["security_audit"]["filename"] = os.path.join(_LOG_DIR, "security_audit.log")  # noqa: F405
