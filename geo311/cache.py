"""The city's configuration as each process keeps it: the service categories with their
questions, choices, required layers, service levels and default department, the routing rules,
the initial status and the active Open311 API keys. Filing a request needs all of it, and
fetching it on every request cost more than the rest of the request together
(``make bench ONLY=open311_post``).

A copy is current while the configuration's generation number is the one it was loaded at:
triggers move that number on every write to those tables, inside the writing transaction
(migration 0005). ``city_config()`` reads the number (one single-row query) and reloads on any
change, so an edit in the admin or a ``load_city_config`` is seen by the first request after its
commit, and by the writing transaction itself. The number is read before the rows, so a copy is
never older than the number it is filed under. Filing a request reads the number in its routing
query instead (``routing.route``), and starts again when its copy turns out to be old.

The cached model instances are shared by every request of the process and its threads: read
them, never change or save them.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from . import sql_requests
from .models import ApiKey, RoutingRule, ServiceCategory, Status


@dataclass(frozen=True)
class CityConfig:
    generation: int
    # Every category, retired ones too (filing one says it is not taken any more), with
    # ``attributes`` (and their ``values``), ``required_layers``, ``service_levels`` and
    # ``default_department``.
    categories: Mapping[str, ServiceCategory]
    categories_by_pk: Mapping[int, ServiceCategory]
    # By category pk: the rules that may apply to it (its own, its group's, any category's),
    # in priority order, with department, team, layer and category loaded.
    rules: Mapping[int, tuple[RoutingRule, ...]]
    all_rules: tuple[RoutingRule, ...]
    initial_status: Status | None
    api_keys: Mapping[str, ApiKey]  # the active keys, by key

    def definition(self, category: ServiceCategory) -> ServiceCategory:
        """The cached copy of ``category`` (same row, questions loaded); ``category`` itself
        when it is not a stored category."""
        return self.categories_by_pk.get(category.pk, category)

    def rules_for(self, category: ServiceCategory) -> tuple[RoutingRule, ...]:
        return self.rules.get(category.pk, self.all_rules)


class ConfigurationChanged(Exception):
    """The configuration a request was being decided with is no longer the current one."""


_current: CityConfig | None = None


def city_config(*, generation: int | None = None) -> CityConfig:
    """The configuration at ``generation`` (by default the current one, read with one query):
    this process's copy, reloaded first when it is at another generation."""
    global _current
    if generation is None:
        generation = sql_requests.config_generation()
    config = _current
    if config is None or config.generation != generation:
        config = _current = _load(generation)
    return config


def city_config_unchecked() -> CityConfig:
    """This process's copy as it is, without a query (loaded when there is none yet). For
    callers whose later query reads the generation too (``routing.route`` does) and who decide
    again with ``city_config()`` when it was out of date."""
    return _current or city_config()


def _load(generation: int) -> CityConfig:
    categories = list(
        ServiceCategory.objects.select_related("default_department").prefetch_related(
            "attributes__values", "required_layers", "service_levels"
        )
    )
    rules = tuple(RoutingRule.objects.select_related("department", "team", "layer", "category"))
    return CityConfig(
        generation=generation,
        categories={c.service_code: c for c in categories},
        categories_by_pk={c.pk: c for c in categories},
        rules={
            c.pk: tuple(
                r
                for r in rules
                if r.category_id == c.pk or (r.category_id is None and r.group in (c.group, ""))
            )
            for c in categories
        },
        all_rules=rules,
        initial_status=Status.objects.filter(is_initial=True).first(),
        api_keys={k.key: k for k in ApiKey.objects.filter(active=True)},
    )
