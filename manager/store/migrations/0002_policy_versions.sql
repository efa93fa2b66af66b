-- Every effective policy version handed out, so two versions can be diffed.
CREATE TABLE policy_versions (
	tenant_id TEXT NOT NULL,
	version TEXT NOT NULL,
	body TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	PRIMARY KEY (tenant_id, version)
);
