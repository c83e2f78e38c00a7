"""infra/ declares exactly what the code uses: topics, subscriptions, entry points, secrets and
TTL collections, each checked both ways against the code; and checkov finds nothing high in it.

The Terraform is parsed with python-hcl2 (bridgecrew's fork, the one checkov itself parses with).
`terraform validate` needs the google provider, which cannot be downloaded here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest

from shared.adapters.firestore import ERRORS, SYNC_EXECUTIONS
from shared.core.routing import DEAD_LETTER, DEAD_LETTER_SUBSCRIPTION, SUBSCRIPTIONS, TOPICS
from shared.errors import ConfigurationError
from shared.operations.error_query import ErrorFilter
from shared.platform.settings import EnvReader
from shared.roots import erp_webhook, read_settings
from tests.infra import codefacts

INFRA = codefacts.ROOT / "infra"
PUBLIC = {"receive_erp_webhook", "telegram_webhook", "whatsapp_webhook"}
"""The only functions anyone may call: each authenticates its caller (HMAC signature, Telegram's
secret token, Twilio's signature)."""

LOCAL_ONLY_SECRETS = {
    "drive-token": "read only with DRIVE_ENDPOINT set: a local Drive stand-in's fixed token",
    "admin-api-key": "local runs' stand-in for a Google identity (shared/platform/auth.py); the cloud "
    "verifies OIDC tokens",
}
"""Secret names the code reads that the cloud never needs; everything else must be in infra."""

NOT_HIGH = {
    "CKV_GCP_83": "Pub/Sub topics with a customer-managed key: Google already encrypts every "
    "message at rest; a KMS key is defence in depth (and a key ring can never be deleted), "
    "not an exposure",
}
"""Checkov run without a platform key reports no severities. Every failed check then counts as
HIGH, except these, each with the reason it is not."""


# ---- the Terraform, parsed --------------------------------------------------------------------


def _value(attribute: Any) -> Any:
    """python-hcl2 wraps each attribute's value in a one-element list."""
    return attribute[0] if isinstance(attribute, list) and len(attribute) == 1 else attribute


@cache
def terraform() -> dict[str, Any]:
    merged: dict[str, Any] = {"locals": {}, "resource": {}, "variable": {}, "output": {}}
    for path in sorted(INFRA.glob("*.tf")):
        with path.open() as handle:
            parsed = hcl2.load(handle)
        for block in parsed.get("locals", []):
            merged["locals"].update({k: _value(v) for k, v in block.items()})
        for block in parsed.get("resource", []):
            for kind, named in block.items():
                merged["resource"].setdefault(kind, {}).update(named)
        for key in ("variable", "output"):
            for block in parsed.get(key, []):
                merged[key].update(block)
    return merged


def local(name: str) -> Any:
    return terraform()["locals"][name]


def resource(kind: str, name: str) -> dict[str, Any]:
    return terraform()["resource"][kind][name]


def block(body: Mapping[str, Any], name: str) -> dict[str, Any]:
    blocks = body.get(name)
    assert blocks, f"no {name} block"
    return dict(blocks[0])


def attr(body: Mapping[str, Any], name: str) -> Any:
    return _value(body[name])


ENTRY_POINTS = codefacts.entry_points()


def functions() -> dict[str, dict[str, Any]]:
    return dict(local("functions"))


IDENTITIES = sorted(local("identities"))


# ---- Pub/Sub ----------------------------------------------------------------------------------


def test_topics_are_the_routing_tables_topics_and_its_dead_letter_topic() -> None:
    assert sorted(local("topics")) == sorted(TOPICS)
    assert local("dead_letter_topic") == DEAD_LETTER
    assert attr(resource("google_pubsub_topic", "events"), "for_each") == "${toset(local.topics)}"
    assert attr(resource("google_pubsub_topic", "dead_letter"), "name") == (
        "${local.dead_letter_topic}"
    )


def test_subscriptions_are_the_routing_tables_each_pushing_to_its_consumers_event_function() -> (
    None
):
    declared = {
        name: (spec["topic"], ENTRY_POINTS[spec["entry_point"]].folder)
        for name, spec in local("subscriptions").items()
    }
    assert declared == {s.name: (s.topic, s.consumer) for s in SUBSCRIPTIONS}
    for name, spec in local("subscriptions").items():
        target = ENTRY_POINTS[spec["entry_point"]]
        assert target.kind == "cloud_event", f"{name} pushes to an HTTP function"
    recorder = local("dead_letter_subscription")
    assert (recorder["name"], recorder["topic"]) == (
        DEAD_LETTER_SUBSCRIPTION.name,
        DEAD_LETTER_SUBSCRIPTION.topic,
    )
    assert ENTRY_POINTS[recorder["entry_point"]].kind == "cloud_event"


def test_every_event_function_is_fed_by_a_subscription() -> None:
    fed = {spec["entry_point"] for spec in local("subscriptions").values()}
    fed.add(local("dead_letter_subscription")["entry_point"])
    events = {name for name, e in ENTRY_POINTS.items() if e.kind == "cloud_event"}
    assert fed == events


def test_consumer_subscriptions_retry_then_dead_letter_and_the_recorder_does_not() -> None:
    push = resource("google_pubsub_subscription", "push")
    assert attr(push, "for_each") == "${local.subscriptions}"
    assert attr(push, "name") == "${each.key}"
    retry = block(push, "retry_policy")
    assert attr(retry, "minimum_backoff") and attr(retry, "maximum_backoff")
    dead_letter = block(push, "dead_letter_policy")
    assert attr(dead_letter, "dead_letter_topic") == "${google_pubsub_topic.dead_letter.id}"
    assert attr(dead_letter, "max_delivery_attempts") == "${var.max_delivery_attempts}"
    assert block(push, "push_config")["oidc_token"], "push without an OIDC identity"
    recorder = resource("google_pubsub_subscription", "dead_letter_recorder")
    assert "dead_letter_policy" not in recorder
    assert block(recorder, "retry_policy")
    assert attr(recorder, "name") == "${local.dead_letter_subscription.name}"


# ---- functions --------------------------------------------------------------------------------


def test_every_entry_point_in_the_code_is_a_deployed_function_and_nothing_else() -> None:
    assert sorted(functions()) == sorted(ENTRY_POINTS)
    for name, spec in functions().items():
        entry = ENTRY_POINTS[name]
        assert spec["source"] == entry.folder, name
        assert spec["trigger"] == ("pubsub" if entry.kind == "cloud_event" else "http"), name
        assert (spec["access"] == "pubsub") == (entry.kind == "cloud_event"), name


def test_functions_are_second_gen_python311_built_from_the_staged_source_per_entry_point() -> None:
    fn = resource("google_cloudfunctions2_function", "fn")
    assert attr(fn, "for_each") == "${local.functions}"
    build = block(fn, "build_config")
    assert attr(build, "runtime") == "python311"
    assert attr(build, "entry_point") == "${each.key}"
    storage = block(block(build, "source"), "storage_source")
    assert "google_storage_bucket_object.source[each.value.source]" in attr(storage, "object")
    staged = resource("google_storage_bucket_object", "source")
    assert attr(staged, "source") == "${var.staged_dir}/${each.value}.zip"


def test_sizes_fit_the_quotas_and_the_push_ack_deadline() -> None:
    for name, spec in functions().items():
        assert 1 <= spec["max_instances"] <= 20, name
        if spec["trigger"] == "pubsub":
            assert spec["timeout"] <= 600, f"{name}: longer than Pub/Sub's push ack deadline"
        if spec["access"] == "scheduler":
            assert spec["timeout"] <= 1800, f"{name}: longer than Scheduler's attempt deadline"
    # One flusher and one drainer hold a lease: more instances would only wait.
    assert functions()["sync_invoice_sheet"]["max_instances"] <= 3
    assert functions()["send_alerts"]["max_instances"] <= 3
    for job in ("reconcile_invoices", "backfill_attachments", "drain_alerts", "daily_digest"):
        assert functions()[job]["max_instances"] == 1, job


def each_value(expression: object, spec: Mapping[str, Any]) -> int:
    """What a number the Terraform writes per function is for one function: a literal,
    `${each.value.FIELD}` or `${tostring(each.value.FIELD)}`. Any other expression fails: extend
    this reader, do not guess."""
    if isinstance(expression, int) or str(expression).isdigit():
        return int(str(expression))
    field = re.fullmatch(
        r"\$\{(?:each\.value\.(\w+)|tostring\(each\.value\.(\w+)\))\}", str(expression)
    )
    assert field, f"cannot read {expression!r}"
    return int(spec[field[1] or field[2]])


def test_each_instance_serves_as_many_threads_as_requests_cloud_run_admits_to_it() -> None:
    """functions-framework runs THREADS threads (four per CPU without it). With fewer threads
    than admitted requests, a few slow requests stall an instance Cloud Run keeps sending more."""
    service = block(resource("google_cloudfunctions2_function", "fn"), "service_config")
    env = attr(service, "environment_variables")
    assert env.count("'THREADS'") == 1, env
    last = re.search(r",\{'THREADS': '([^']*)'\}\)\}$", env)
    assert last, "THREADS must be the last map merged, so no other setting changes it"
    admitted = attr(service, "max_instance_request_concurrency")
    for name, spec in functions().items():
        assert each_value(last[1], spec) == each_value(admitted, spec), name


def test_only_the_self_authenticating_webhooks_are_public() -> None:
    public = {name for name, spec in functions().items() if spec["access"] == "public"}
    assert public == PUBLIC
    assert "download_attachment_public ?" in functions()["download_attachment"]["access"]
    # allUsers is granted through invoker_of, to public functions only.
    invoker = resource("google_cloud_run_v2_service_iam_member", "invoker")
    assert attr(invoker, "member") == "${each.value.member}"
    assert 'fn.access == \\"public\\" ? \\"allUsers\\"' in json.dumps(local("invoker_of"))
    assert json.dumps(terraform()).count("allUsers") == 1


def test_pubsub_and_scheduler_targets_refuse_the_internet_at_the_network() -> None:
    service = block(resource("google_cloudfunctions2_function", "fn"), "service_config")
    assert attr(service, "ingress_settings") == (
        "${contains(['pubsub', 'scheduler'],each.value.access) ? "
        '"ALLOW_INTERNAL_ONLY" : "ALLOW_ALL"}'
    )


def test_every_scheduled_entry_point_has_a_job_calling_it_with_the_schedulers_oidc_token() -> None:
    jobs = local("scheduled_jobs")
    targets = sorted(job["entry_point"] for job in jobs.values())
    scheduled = sorted(name for name, spec in functions().items() if spec["access"] == "scheduler")
    assert targets == scheduled
    for name in targets:
        assert ENTRY_POINTS[name].kind == "http", name
    job = resource("google_cloud_scheduler_job", "job")
    oidc = block(block(job, "http_target"), "oidc_token")
    assert attr(oidc, "service_account_email") == "${google_service_account.scheduler.email}"
    # What the function checks as its audience is what Scheduler puts in the token.
    assert attr(oidc, "audience") == "${local.function_url[each.value.entry_point]}"
    env = attr(
        block(resource("google_cloudfunctions2_function", "fn"), "service_config"),
        "environment_variables",
    )
    assert "'ADMIN_AUDIENCE': '${local.function_url[each.key]}'" in env


# ---- secrets ----------------------------------------------------------------------------------


def test_every_secret_the_code_reads_is_declared_and_no_other() -> None:
    in_code = codefacts.secret_pairs()
    cloud = {name: env for name, env in in_code.items() if name not in LOCAL_ONLY_SECRETS}
    assert dict(local("secrets")) == cloud
    assert attr(resource("google_secret_manager_secret", "secret"), "for_each") == (
        "${local.secrets}"
    )


BASE_ENV = {
    "GCP_PROJECT": "p",
    "ERP_SITE": "erp.example.com",
    "SHEETS_SPREADSHEET_ID": "sheet",
    "ERPNEXT_URL": "http://erp.invalid",
    "DRIVE_AUTH": "shared_drive",
    "DRIVE_SHARED_DRIVE_ID": "drive",
    "TELEGRAM_BOT_USERNAME": "bridge_bot",
    "ALERT_CHATS_JSON": '{"service_team": -1, "oncall": -2, "admins": -3}',
}
FEATURE_ENV = {
    "DRIVE_AUTH": "oauth_user",
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "TWILIO_WHATSAPP_FROM": "+10000000000",
    "WHATSAPP_WEBHOOK_PUBLIC_URL": "https://example.invalid/whatsapp",
}


def _probe(
    entry_point: str, env: Mapping[str, str], provided: set[str] | None
) -> tuple[set[str], bool]:
    """The secrets `entry_point`'s settings ask Secret Manager for (all given unless `provided`
    says which), and whether the settings then start. Read as its deployed function reads them:
    functions-framework names the entry point (FUNCTION_TARGET) before main.py is imported."""
    asked: set[str] = set()

    def read_secret(name: str) -> str | None:
        asked.add(name)
        return "A1_" + name.replace("-", "_") if provided is None or name in provided else None

    folder = ENTRY_POINTS[entry_point].folder
    try:
        read_settings(folder, {**env, erp_webhook.TARGET: entry_point}, read_secret)
    except ConfigurationError:
        return asked, False
    return asked, True


@cache
def usable_secrets(entry_point: str) -> frozenset[str]:
    """Every secret `entry_point` reads with every feature on (WhatsApp, a user's Drive)."""
    asked, started = _probe(entry_point, {**BASE_ENV, **FEATURE_ENV}, None)
    assert started, f"{entry_point} does not start with every feature on"
    return frozenset(asked)


@cache
def required_secrets(entry_point: str) -> frozenset[str]:
    """The secrets without which `entry_point` does not start, with the base settings."""

    def starts(provided: set[str]) -> bool:
        return _probe(entry_point, BASE_ENV, provided)[1]

    given, _ = _probe(entry_point, BASE_ENV, None)
    if not starts(given):
        # A feature's secret without the rest of the feature's settings (Twilio's token without
        # its account) is itself refused: leave such a secret out.
        given = next(given - {name} for name in sorted(given) if starts(given - {name}))
    return frozenset(name for name in given if not starts(given - {name}))


def granted_secrets(identity: str) -> set[str]:
    """What `identity` may read in Secret Manager, and what every function it runs mounts."""
    return set(local("identities")[identity]["secrets"])


def entry_points_of(identity: str) -> list[str]:
    served = sorted(name for name, spec in functions().items() if spec["identity"] == identity)
    assert served, f"{identity} runs no function"
    return served


def test_the_probe_sees_what_each_entry_point_reads() -> None:
    # The receiver cannot start without its secret; the recorder reads none; the operations read
    # ERPNext's token (optional: a replay of the document as it is now).
    assert required_secrets("receive_erp_webhook") == {"webhook-secret"}
    assert usable_secrets("record_dead_letter") == frozenset()
    assert usable_secrets("admin_api") == {"erpnext-api-key", "erpnext-api-secret"}
    assert required_secrets("admin_api") == frozenset()
    assert {"erpnext-api-key", "erpnext-api-secret"} <= required_secrets("sync_invoice_sheet")


@pytest.mark.parametrize("identity", IDENTITIES)
def test_no_identity_is_granted_a_secret_none_of_its_entry_points_reads(identity: str) -> None:
    served = entry_points_of(identity)
    read = set().union(*(usable_secrets(name) for name in served))
    unused = granted_secrets(identity) - read
    assert not unused, f"{identity} is granted {sorted(unused)}, which none of {served} reads"
    # The grants and the mounts are both that list, a feature's secret only with the feature.
    gate = "if lookup(local.optional_secrets,secret_id,True)"
    assert "local.identities" in local("secret_grants") and gate in local("secret_grants")
    accessor = resource("google_secret_manager_secret_iam_member", "accessor")
    assert attr(accessor, "for_each") == "${local.secret_grants}"
    service = block(resource("google_cloudfunctions2_function", "fn"), "service_config")
    assert gate in attr(service["dynamic"][0]["secret_environment_variables"], "for_each")


@pytest.mark.parametrize("entry_point", sorted(ENTRY_POINTS))
def test_each_entry_point_can_read_every_cloud_secret_it_uses_and_every_one_it_requires(
    entry_point: str,
) -> None:
    granted = granted_secrets(functions()[entry_point]["identity"])
    missing = usable_secrets(entry_point) - set(LOCAL_ONLY_SECRETS) - granted
    assert not missing, f"{entry_point} reads {sorted(missing)} but cannot"
    assert required_secrets(entry_point) <= granted


def test_only_the_receiver_reads_the_webhook_secret_and_only_it_could_verify_a_webhook() -> None:
    readers = {name for name in ENTRY_POINTS if "webhook-secret" in usable_secrets(name)}
    assert readers == {"receive_erp_webhook"}
    # An instance of another entry point holds no secret: it refuses to build a receiver rather
    # than one that would accept unsigned webhooks.
    env = EnvReader({**BASE_ENV, erp_webhook.TARGET: "record_dead_letter"})
    root = erp_webhook.ErpWebhookRoot(erp_webhook.Settings.read(env))
    assert root.settings.ingress.webhook_secret is None and root.settings.erpnext is None
    with pytest.raises(ConfigurationError, match="no webhook secret"):
        _ = root.ingress
    # A process that may call any of them (a test, the `bridge` command) reads every section.
    every = erp_webhook.Settings.read(EnvReader({**BASE_ENV, "WEBHOOK_SECRET": "s" * 16}))
    assert every.serves == erp_webhook.ENTRY_POINTS


def test_the_erp_webhook_root_knows_its_folders_entry_points() -> None:
    # An entry point it did not know would read every section, the webhook secret among them,
    # and not start without a grant.
    in_code = {name for name, entry in ENTRY_POINTS.items() if entry.folder == "erp_webhook"}
    assert in_code == erp_webhook.ENTRY_POINTS


def test_the_identities_are_declared_for_every_function_and_used() -> None:
    used = {spec["identity"] for spec in functions().values()}
    assert used == set(local("identities"))


def test_only_the_webhook_folders_identities_publish() -> None:
    publishers = {
        spec["identity"]
        for name, spec in functions().items()
        if local("identities")[spec["identity"]]["publishes"]
    }
    folders = {spec["source"] for spec in functions().values() if spec["identity"] in publishers}
    assert folders == {"erp_webhook"}
    assert "receive_erp_webhook" in {
        n for n, s in functions().items() if s["identity"] in publishers
    }
    # The ingress touches nothing but Pub/Sub and its secret.
    ingress = local("identities")[functions()["receive_erp_webhook"]["identity"]]
    assert ingress == {"publishes": True, "firestore": False, "secrets": ["webhook-secret"]}


def test_mounted_secrets_use_the_variable_names_the_code_reads() -> None:
    service = block(resource("google_cloudfunctions2_function", "fn"), "service_config")
    dynamic = service["dynamic"][0]["secret_environment_variables"]
    content = dynamic["content"][0]
    assert attr(content, "key") == "${local.secrets[secret_environment_variables.value]}"
    assert "local.identities[each.value.identity].secrets" in attr(dynamic, "for_each")


# ---- Firestore --------------------------------------------------------------------------------


def test_ttl_policies_cover_exactly_the_collections_written_with_expire_at() -> None:
    written = codefacts.ttl_collections()
    assert written, "the code writes no expire_at: the reader is broken"
    assert sorted(local("ttl_collections")) == sorted(written), json.dumps(written, indent=1)
    assert local("ttl_field") == codefacts.TTL_FIELD
    field = resource("google_firestore_field", "ttl")
    assert attr(field, "for_each") == "${toset(local.ttl_collections)}"
    assert attr(field, "field") == "${local.ttl_field}"
    assert "ttl_config" in field


def test_every_error_log_filter_and_the_executions_list_have_their_composite_index() -> None:
    every_filter = ErrorFilter(
        integration="i", operation="o", status="pending", entity_type="Sales Invoice"
    )
    wanted = {("errors", field, "last_seen") for field in every_filter.equalities()}
    wanted.add(("sync_executions", "job", "started_at"))
    declared = {
        (index["collection"], index["equal"], index["newest_first"])
        for index in local("composite_indexes").values()
    }
    assert declared == wanted
    constants = {ERRORS, SYNC_EXECUTIONS}
    assert {collection for collection, _, _ in declared} == constants
    index = resource("google_firestore_index", "query")
    assert [attr(f, "order") for f in index["fields"]] == ["ASCENDING", "DESCENDING"]


DATABASE_ONLY = (
    'resource.name == "projects/${var.project}/databases/${google_firestore_database.default.name}"'
)
"""The condition on every Firestore grant: the bridge's database, not the project's others."""


def test_every_firestore_grant_reaches_only_the_database_the_code_opens() -> None:
    database = resource("google_firestore_database", "default")
    opened = codefacts.firestore_databases()
    assert set(opened) == {attr(database, "name")}, opened
    grants = {
        f"{kind}.{name}": body
        for kind, named in terraform()["resource"].items()
        for name, body in named.items()
        if str(attr(body, "role") if "role" in body else "").startswith("roles/datastore.")
    }
    assert grants, "no Firestore grant found: the reader is broken"
    for name, body in grants.items():
        conditions = body.get("condition")
        assert conditions, f"{name} grants {attr(body, 'role')} project-wide: no condition"
        expression = attr(dict(conditions[0]), "expression").replace('\\"', '"')
        assert expression == DATABASE_ONLY, name
    # No other resource (a binding, a policy) grants a Firestore role.
    assert json.dumps(terraform()).count("roles/datastore.") == len(grants)
    firestore_user = resource("google_project_iam_member", "firestore_user")
    assert "spec.firestore" in attr(firestore_user, "for_each")


# ---- checkov ----------------------------------------------------------------------------------


@cache
def checkov_report() -> dict[str, Any]:
    checkov = Path(sys.executable).with_name("checkov")
    env = {
        **os.environ,
        "BC_SKIP_MAPPING": "TRUE",
        "CHECKOV_EXPERIMENTAL_TERRAFORM_MANAGED_MODULES": "FALSE",
    }
    env.pop("BC_API_KEY", None)
    result = subprocess.run(
        [
            str(checkov),
            "--directory",
            str(INFRA),
            "--framework",
            "terraform",
            "--skip-download",  # offline: no policy metadata, no severities
            "--output",
            "json",
            "--compact",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr[-2000:]
    report = json.loads(result.stdout)
    return report[0] if isinstance(report, list) else report


def test_checkov_parses_every_resource_and_runs_its_checks() -> None:
    summary = checkov_report()["summary"]
    assert summary["parsing_errors"] == 0
    assert summary["resource_count"] >= 30
    assert summary["passed"] >= 5


def test_checkov_reports_no_failed_high_or_critical_check() -> None:
    failed = checkov_report()["results"].get("failed_checks", [])
    high = [
        f"{c['check_id']} {c['resource']}: {c['check_name']} (severity {c.get('severity')})"
        for c in failed
        if (c.get("severity") or "HIGH").upper() in ("HIGH", "CRITICAL")
        and not (c.get("severity") is None and c["check_id"] in NOT_HIGH)
    ]
    assert high == []


SKIP_COMMENT = re.compile(r"^\s*#\s*checkov:skip=(\w+):(.*)$")
RESOURCE_HEADER = re.compile(r'^resource\s+"(\w+)"\s+"(\w+)"')


def marked_skips() -> dict[tuple[str, str], str]:
    """Every `#checkov:skip=CHECK:why` comment in infra/*.tf: (check, the resource whose block
    holds it) -> why."""
    marked: dict[tuple[str, str], str] = {}
    for tf in sorted(INFRA.glob("*.tf")):
        resource = None
        for line in tf.read_text().splitlines():
            if header := RESOURCE_HEADER.match(line):
                resource = f"{header[1]}.{header[2]}"
            elif skip := SKIP_COMMENT.match(line):
                assert resource, f"{tf.name}: a checkov:skip outside a resource: {line.strip()}"
                marked[(skip[1], resource)] = skip[2].strip()
    return marked


def test_every_skipped_check_says_why_inline() -> None:
    """Checkov skips exactly the checks the Terraform's `checkov:skip` comments name, on their
    resources (every instance of a for_each), with the comment's reason; each reason says why.
    A run that skips nothing, or a checkov that ignores the comments, fails here."""
    marked = marked_skips()
    assert marked, "no checkov:skip comment found in infra/*.tf"
    assert all(len(why) > 20 for why in marked.values()), marked
    results = checkov_report()["results"]
    skipped: dict[tuple[str, str], set[str]] = {}
    for check in results.get("skipped_checks", []):
        resource = re.sub(r"\[.*\]$", "", check["resource"])  # fn["admin_api"] is fn
        skipped.setdefault((check["check_id"], resource), set()).add(
            check["check_result"].get("suppress_comment", "")
        )
    assert skipped == {key: {why} for key, why in marked.items()}
    still_failing = {
        (check["check_id"], re.sub(r"\[.*\]$", "", check["resource"]))
        for check in results.get("failed_checks", [])
    }
    assert not still_failing & marked.keys(), "a marked check fails on some instance"
