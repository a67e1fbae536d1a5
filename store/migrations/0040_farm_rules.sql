-- A farm's alert-rule override, stored through the API (PUT /farms/{farm}/rules): the top layer
-- over the shipped defaults and the alert service's rule files. The alert service reloads when
-- (count, max(updated_at)) changes.
CREATE TABLE farm_rules (
    farm_id    text PRIMARY KEY REFERENCES farms (id) ON DELETE CASCADE,
    rules      jsonb NOT NULL,          -- a validated rule set (kernel.rules.RuleSet) as JSON
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_by text NOT NULL
);
