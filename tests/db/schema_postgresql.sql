-- retrainer store schema (postgresql); regenerate: python -m tests.db.schema
CREATE TABLE alembic_version (
    version_num VARCHAR(32) NOT NULL,
    PRIMARY KEY (version_num)
);
CREATE TABLE alias_history (
    actor VARCHAR(100) NOT NULL,
    alias VARCHAR(100) NOT NULL,
    at TIMESTAMP WITH TIME ZONE NOT NULL,
    id INTEGER NOT NULL DEFAULT nextval('alias_history_id_seq'::regclass),
    previous INTEGER,
    reason TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (id)
);
CREATE TABLE aliases (
    name VARCHAR(100) NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (name),
    FOREIGN KEY (version) REFERENCES model_versions (version)
);
CREATE TABLE batches (
    artifact VARCHAR(64) NOT NULL,
    data_time TIMESTAMP WITH TIME ZONE,
    evaluated BOOLEAN NOT NULL,
    id INTEGER NOT NULL DEFAULT nextval('batches_id_seq'::regclass),
    key VARCHAR(200) NOT NULL,
    labels VARCHAR(64),
    n_labelled INTEGER NOT NULL,
    n_rows INTEGER NOT NULL,
    note TEXT NOT NULL,
    received_at TIMESTAMP WITH TIME ZONE NOT NULL,
    source TEXT NOT NULL,
    status VARCHAR(20) NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (key)
);
CREATE TABLE checks (
    alarm BOOLEAN NOT NULL,
    batch_id INTEGER,
    column VARCHAR(200),
    cycle_id INTEGER NOT NULL,
    detail JSON NOT NULL,
    id INTEGER NOT NULL DEFAULT nextval('checks_id_seq'::regclass),
    kind VARCHAR(20) NOT NULL,
    name VARCHAR(50) NOT NULL,
    p_value DOUBLE PRECISION,
    severity VARCHAR(10) NOT NULL,
    statistic DOUBLE PRECISION,
    threshold DOUBLE PRECISION,
    PRIMARY KEY (id),
    FOREIGN KEY (batch_id) REFERENCES batches (id),
    FOREIGN KEY (cycle_id) REFERENCES cycles (id)
);
CREATE TABLE cycles (
    finished_at TIMESTAMP WITH TIME ZONE,
    id INTEGER NOT NULL DEFAULT nextval('cycles_id_seq'::regclass),
    started_at TIMESTAMP WITH TIME ZONE NOT NULL,
    status VARCHAR(20) NOT NULL,
    summary JSON NOT NULL,
    PRIMARY KEY (id)
);
CREATE TABLE decisions (
    action VARCHAR(20) NOT NULL,
    at TIMESTAMP WITH TIME ZONE NOT NULL,
    cycle_id INTEGER NOT NULL,
    id INTEGER NOT NULL DEFAULT nextval('decisions_id_seq'::regclass),
    reasons JSON NOT NULL,
    suppressed JSON NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY (cycle_id) REFERENCES cycles (id)
);
CREATE TABLE devices (
    first_seen TIMESTAMP WITH TIME ZONE NOT NULL,
    id VARCHAR(32) NOT NULL,
    last_seen TIMESTAMP WITH TIME ZONE NOT NULL,
    reports INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    target VARCHAR(100) NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (id)
);
CREATE TABLE events (
    at TIMESTAMP WITH TIME ZONE NOT NULL,
    batch_id INTEGER,
    cycle_id INTEGER,
    data JSON NOT NULL,
    id INTEGER NOT NULL DEFAULT nextval('events_id_seq'::regclass),
    kind VARCHAR(30) NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (id)
);
CREATE TABLE label_sets (
    artifact VARCHAR(64) NOT NULL,
    id INTEGER NOT NULL DEFAULT nextval('label_sets_id_seq'::regclass),
    key VARCHAR(200) NOT NULL,
    n_rows INTEGER NOT NULL,
    received_at TIMESTAMP WITH TIME ZONE NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (key)
);
CREATE TABLE model_versions (
    artifact VARCHAR(64) NOT NULL,
    artifact_format VARCHAR(20) NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    lineage JSON NOT NULL,
    metrics JSON NOT NULL,
    reference JSON NOT NULL,
    run_id INTEGER,
    version INTEGER NOT NULL,
    PRIMARY KEY (version)
);
CREATE TABLE prediction_logs (
    artifact VARCHAR(64) NOT NULL,
    id INTEGER NOT NULL DEFAULT nextval('prediction_logs_id_seq'::regclass),
    key VARCHAR(200) NOT NULL,
    matched INTEGER NOT NULL,
    n_rows INTEGER NOT NULL,
    received_at TIMESTAMP WITH TIME ZONE NOT NULL,
    source TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (key)
);
CREATE TABLE prediction_sets (
    artifact VARCHAR(64) NOT NULL,
    at TIMESTAMP WITH TIME ZONE NOT NULL,
    batch_id INTEGER NOT NULL,
    id INTEGER NOT NULL DEFAULT nextval('prediction_sets_id_seq'::regclass),
    role VARCHAR(20) NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY (batch_id) REFERENCES batches (id)
);
CREATE TABLE profiles (
    batch_id INTEGER NOT NULL,
    profile JSON NOT NULL,
    reference_version INTEGER,
    PRIMARY KEY (batch_id),
    FOREIGN KEY (batch_id) REFERENCES batches (id)
);
CREATE TABLE rollouts (
    actor VARCHAR(100) NOT NULL,
    at TIMESTAMP WITH TIME ZONE NOT NULL,
    base INTEGER,
    id INTEGER NOT NULL DEFAULT nextval('rollouts_id_seq'::regclass),
    percent DOUBLE PRECISION NOT NULL,
    reason TEXT NOT NULL,
    target VARCHAR(100) NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (id)
);
CREATE TABLE runs (
    cycle_id INTEGER,
    decision_id INTEGER,
    error TEXT NOT NULL,
    finished_at TIMESTAMP WITH TIME ZONE,
    id INTEGER NOT NULL DEFAULT nextval('runs_id_seq'::regclass),
    key VARCHAR(200) NOT NULL,
    metrics JSON NOT NULL,
    started_at TIMESTAMP WITH TIME ZONE NOT NULL,
    status VARCHAR(20) NOT NULL,
    version INTEGER,
    window JSON NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (key),
    FOREIGN KEY (cycle_id) REFERENCES cycles (id),
    FOREIGN KEY (decision_id) REFERENCES decisions (id)
);
CREATE TABLE service_leases (
    acquired_at TIMESTAMP WITH TIME ZONE NOT NULL,
    expires_at TIMESTAMP WITH TIME ZONE NOT NULL,
    holder VARCHAR(200) NOT NULL,
    name VARCHAR(200) NOT NULL,
    PRIMARY KEY (name)
);
CREATE TABLE service_schedule_slots (
    attempts INTEGER NOT NULL,
    cycle_id INTEGER,
    error TEXT NOT NULL,
    finished_at TIMESTAMP WITH TIME ZONE,
    holder VARCHAR(200) NOT NULL,
    id INTEGER NOT NULL DEFAULT nextval('service_schedule_slots_id_seq'::regclass),
    key VARCHAR(250) NOT NULL,
    nominal TIMESTAMP WITH TIME ZONE NOT NULL,
    schedule VARCHAR(200) NOT NULL,
    started_at TIMESTAMP WITH TIME ZONE,
    status VARCHAR(20) NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (key)
);
CREATE TABLE service_tokens (
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    hash VARCHAR(64) NOT NULL,
    id INTEGER NOT NULL DEFAULT nextval('service_tokens_id_seq'::regclass),
    name VARCHAR(100) NOT NULL,
    prefix VARCHAR(32) NOT NULL,
    revoked BOOLEAN NOT NULL,
    scope VARCHAR(10) NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (prefix)
);
CREATE TABLE service_webhook_deliveries (
    attempts INTEGER NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    delivered_at TIMESTAMP WITH TIME ZONE,
    error TEXT NOT NULL,
    event VARCHAR(30) NOT NULL,
    event_id INTEGER NOT NULL,
    holder VARCHAR(200) NOT NULL,
    id INTEGER NOT NULL DEFAULT nextval('service_webhook_deliveries_id_seq'::regclass),
    key VARCHAR(250) NOT NULL,
    next_at TIMESTAMP WITH TIME ZONE NOT NULL,
    payload JSON NOT NULL,
    response_code INTEGER,
    status VARCHAR(20) NOT NULL,
    url TEXT NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (key)
);
CREATE TABLE state (
    key VARCHAR(100) NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
    value JSON NOT NULL,
    PRIMARY KEY (key)
);
CREATE TABLE telemetry_reports (
    alarms INTEGER NOT NULL,
    checks JSON NOT NULL,
    device VARCHAR(32) NOT NULL,
    id INTEGER NOT NULL DEFAULT nextval('telemetry_reports_id_seq'::regclass),
    key VARCHAR(200) NOT NULL,
    n_rows INTEGER NOT NULL,
    predictions JSON NOT NULL,
    profile JSON NOT NULL,
    received_at TIMESTAMP WITH TIME ZONE NOT NULL,
    sequence INTEGER NOT NULL,
    source TEXT NOT NULL,
    target VARCHAR(100) NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (key)
);
