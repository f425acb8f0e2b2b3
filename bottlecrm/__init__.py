"""Running a real BottleCRM (django-crm) server locally: settings, bootstrap, the server manager."""
