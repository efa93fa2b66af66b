-- mamori manager schema. Portable SQL for SQLite and PostgreSQL; the few
-- dialect differences are {{BLOB}} and {{SERIAL}}. Times are Unix
-- nanoseconds (BIGINT), booleans INTEGER 0/1, lists and maps JSON text.

CREATE TABLE tenants (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL UNIQUE,
	created_at BIGINT NOT NULL
);

CREATE TABLE tenant_settings (
	tenant_id TEXT PRIMARY KEY REFERENCES tenants(id),
	event_retention_days INTEGER NOT NULL DEFAULT 90,
	offline_after_missed INTEGER NOT NULL DEFAULT 3,
	inactive_cleanup_days INTEGER NOT NULL DEFAULT 0,
	default_heartbeat_seconds INTEGER NOT NULL DEFAULT 60
);

CREATE TABLE users (
	id TEXT PRIMARY KEY,
	tenant_id TEXT NOT NULL REFERENCES tenants(id),
	name TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	UNIQUE (tenant_id, name)
);

CREATE TABLE api_keys (
	id TEXT PRIMARY KEY,
	tenant_id TEXT NOT NULL REFERENCES tenants(id),
	name TEXT NOT NULL,
	hash TEXT NOT NULL UNIQUE,
	system_admin INTEGER NOT NULL DEFAULT 0,
	revoked INTEGER NOT NULL DEFAULT 0,
	created_at BIGINT NOT NULL
);

CREATE TABLE enrollment_tokens (
	id TEXT PRIMARY KEY,
	tenant_id TEXT NOT NULL REFERENCES tenants(id),
	hash TEXT NOT NULL UNIQUE,
	policy_id TEXT NOT NULL DEFAULT '',
	grp TEXT NOT NULL DEFAULT '',
	tags TEXT NOT NULL DEFAULT '[]',
	expires_at BIGINT NOT NULL,
	max_uses INTEGER NOT NULL,
	uses INTEGER NOT NULL DEFAULT 0,
	revoked INTEGER NOT NULL DEFAULT 0,
	created_at BIGINT NOT NULL
);
CREATE INDEX enrollment_tokens_tenant ON enrollment_tokens (tenant_id);

CREATE TABLE policies (
	id TEXT PRIMARY KEY,
	tenant_id TEXT NOT NULL REFERENCES tenants(id),
	parent_id TEXT NOT NULL DEFAULT '',
	name TEXT NOT NULL,
	description TEXT NOT NULL DEFAULT '',
	heartbeat_seconds INTEGER NOT NULL DEFAULT 0,
	budget TEXT NOT NULL DEFAULT 'null',
	outbox TEXT NOT NULL DEFAULT 'null',
	modules TEXT NOT NULL DEFAULT '{}',
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL,
	UNIQUE (tenant_id, name)
);

CREATE TABLE computers (
	id TEXT PRIMARY KEY,
	tenant_id TEXT NOT NULL REFERENCES tenants(id),
	hostname TEXT NOT NULL DEFAULT '',
	machine_id TEXT NOT NULL DEFAULT '',
	instance_id TEXT NOT NULL DEFAULT '',
	os TEXT NOT NULL DEFAULT '',
	kernel TEXT NOT NULL DEFAULT '',
	arch TEXT NOT NULL DEFAULT '',
	ips TEXT NOT NULL DEFAULT '[]',
	agent_version TEXT NOT NULL DEFAULT '',
	cert_serial TEXT NOT NULL UNIQUE,
	cert_fingerprint TEXT NOT NULL,
	cert_not_after BIGINT NOT NULL,
	deactivated INTEGER NOT NULL DEFAULT 0,
	policy_id TEXT NOT NULL DEFAULT '',
	grp TEXT NOT NULL DEFAULT '',
	tags TEXT NOT NULL DEFAULT '[]',
	applied_policy_version TEXT NOT NULL DEFAULT '',
	policy_error TEXT NOT NULL DEFAULT '',
	modules TEXT NOT NULL DEFAULT '[]',
	rulepacks TEXT NOT NULL DEFAULT '[]',
	queue_depth BIGINT NOT NULL DEFAULT 0,
	dropped BIGINT NOT NULL DEFAULT 0,
	clock_skew_ms BIGINT NOT NULL DEFAULT 0,
	overrides TEXT NOT NULL DEFAULT '{}',
	last_heartbeat BIGINT NOT NULL DEFAULT 0,
	enrolled_at BIGINT NOT NULL
);
CREATE INDEX computers_tenant ON computers (tenant_id, hostname);

CREATE TABLE rulepacks (
	tenant_id TEXT NOT NULL REFERENCES tenants(id),
	name TEXT NOT NULL,
	version TEXT NOT NULL,
	sha256 TEXT NOT NULL,
	description TEXT NOT NULL DEFAULT '',
	files INTEGER NOT NULL,
	archive {{BLOB}} NOT NULL,
	imported_at BIGINT NOT NULL,
	distributed_at BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (tenant_id, name, version)
);

CREATE TABLE rulepack_schedules (
	tenant_id TEXT NOT NULL REFERENCES tenants(id),
	name TEXT NOT NULL,
	schedule TEXT NOT NULL,
	PRIMARY KEY (tenant_id, name)
);

CREATE TABLE commands (
	id TEXT PRIMARY KEY,
	tenant_id TEXT NOT NULL REFERENCES tenants(id),
	computer_id TEXT NOT NULL,
	type TEXT NOT NULL,
	args TEXT NOT NULL DEFAULT '{}',
	created_at BIGINT NOT NULL,
	delivered_at BIGINT NOT NULL DEFAULT 0,
	acked_at BIGINT NOT NULL DEFAULT 0,
	ok INTEGER NOT NULL DEFAULT 0,
	error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX commands_computer ON commands (computer_id, acked_at);

CREATE TABLE events (
	tenant_id TEXT NOT NULL,
	id TEXT NOT NULL,
	computer_id TEXT NOT NULL,
	time BIGINT NOT NULL,
	kind TEXT NOT NULL,
	module TEXT NOT NULL,
	severity INTEGER NOT NULL,
	rule_id TEXT NOT NULL,
	message TEXT NOT NULL,
	data TEXT NOT NULL,
	received_at BIGINT NOT NULL,
	PRIMARY KEY (tenant_id, id)
);
-- Few indexes on purpose: each costs ingest about a quarter of its speed.
-- Module, severity, rule and text filters scan the time index newest first.
CREATE INDEX events_time ON events (tenant_id, time, id);
CREATE INDEX events_computer ON events (tenant_id, computer_id, time);

CREATE TABLE alert_rules (
	id TEXT PRIMARY KEY,
	tenant_id TEXT NOT NULL REFERENCES tenants(id),
	name TEXT NOT NULL,
	enabled INTEGER NOT NULL DEFAULT 1,
	module TEXT NOT NULL DEFAULT '',
	min_severity TEXT NOT NULL DEFAULT '',
	rule_id TEXT NOT NULL DEFAULT '',
	grp TEXT NOT NULL DEFAULT '',
	notifier_ids TEXT NOT NULL DEFAULT '[]',
	created_at BIGINT NOT NULL
);

CREATE TABLE alerts (
	id TEXT PRIMARY KEY,
	tenant_id TEXT NOT NULL,
	alert_rule_id TEXT NOT NULL,
	event_id TEXT NOT NULL,
	computer_id TEXT NOT NULL DEFAULT '',
	severity TEXT NOT NULL,
	message TEXT NOT NULL,
	status TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL,
	updated_by TEXT NOT NULL DEFAULT '',
	UNIQUE (tenant_id, alert_rule_id, event_id)
);
CREATE INDEX alerts_tenant ON alerts (tenant_id, created_at);

CREATE TABLE notifiers (
	id TEXT PRIMARY KEY,
	tenant_id TEXT NOT NULL REFERENCES tenants(id),
	name TEXT NOT NULL,
	type TEXT NOT NULL,
	config TEXT NOT NULL,
	created_at BIGINT NOT NULL
);

CREATE TABLE audit_log (
	id {{SERIAL}},
	tenant_id TEXT NOT NULL,
	at BIGINT NOT NULL,
	actor TEXT NOT NULL,
	action TEXT NOT NULL,
	object_type TEXT NOT NULL,
	object_id TEXT NOT NULL DEFAULT '',
	remote TEXT NOT NULL DEFAULT '',
	detail TEXT NOT NULL DEFAULT 'null'
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id);
{{AUDIT_APPEND_ONLY}}
