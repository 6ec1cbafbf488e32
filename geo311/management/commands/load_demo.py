import os
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from geo311.config import CityConfigError, city_config_load, read_config
from geo311.roles import roles_setup
from importers.addresses import AddressImportError, import_address_file
from importers.boundaries import BoundaryImportError
from importers.manifest import import_manifest

DEMO_DIR = Path(__file__).resolve().parents[2] / "demo" / "chicago"
ADMIN_USERNAME = "admin"
DEMO_ADDRESS_SOURCE = "chicago-demo/addresses.csv.gz"


class Command(BaseCommand):
    help = (
        "Load the Chicago demo city (boundaries) and create the demo admin user. "
        "Safe to run again: files already loaded are skipped and the password is kept."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            reports = import_manifest(DEMO_DIR / "layers.json")
        except BoundaryImportError as exc:
            raise CommandError(f"demo city did not load: {exc}") from exc
        for report in reports:
            state = "already loaded" if report.unchanged else "loaded"
            self.stdout.write(
                f"  {report.layer:<18} v{report.version} ({report.status}) {state}: {report.source}"
            )
        try:
            config = city_config_load(data=read_config(DEMO_DIR / "city.yaml"))
        except CityConfigError as exc:
            raise CommandError(f"demo city config did not load: {exc}") from exc
        self.stdout.write(f"  city config: {config.summary()}")
        roles = roles_setup()
        self.stdout.write(f"  staff roles: {', '.join(g.name for g in roles)}")
        try:
            addresses = import_address_file(
                DEMO_DIR / "addresses.csv.gz", source_name=DEMO_ADDRESS_SOURCE
            )
        except AddressImportError as exc:
            raise CommandError(f"demo address points did not load: {exc}") from exc
        state = "kept (loaded before)" if addresses.unchanged else "loaded"
        self.stdout.write(f"  {'addresses':<18} {addresses.imported} points {state}")
        password = self._admin_password()
        # make run passes HOST/PORT to the server; say the address it will really serve on.
        base = f"http://{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo admin: {base}/admin/  user '{ADMIN_USERNAME}'  password '{password}'"
            )
        )

    def _admin_password(self) -> str:
        """The demo admin's password: made once, kept in var/ (not in git), reapplied each run."""
        store = Path(settings.BASE_DIR) / "var" / "demo-admin-password"
        store.parent.mkdir(parents=True, exist_ok=True)
        if store.exists():
            password = store.read_text().strip()
        else:
            password = secrets.token_urlsafe(12)
            store.write_text(password + "\n")
            store.chmod(0o600)
        user_model = get_user_model()
        user, _ = user_model.objects.get_or_create(
            username=ADMIN_USERNAME, defaults={"email": "admin@example.org"}
        )
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        return password
