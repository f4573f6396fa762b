-- Jiuzhu store, schema 13 (SQLite): assessment inputs. A decided case's state carries its
-- assessment with the full trace (about 14 KB), while re-assessing it (`simulate-policy`)
-- reads six of its variables. This narrow row holds just those, as the JSON array
-- [household, area, request, applicant_name, bank, assessment.program] (NULL when the
-- state is not JSON), beside the instance columns the simulation pages by. It is written
-- by the same transaction that writes the instance with an outcome (store/group_write.rs),
-- so it is never stale, and deleted with the instance when the case is archived.
-- Existing decided cases are filled in here from their states.
CREATE TABLE assessment_inputs (
    instance_id TEXT    PRIMARY KEY REFERENCES instances (id),
    process_id  TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    outcome     TEXT    NOT NULL,
    unit        TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL,
    inputs      TEXT
);

INSERT INTO assessment_inputs (instance_id, process_id, status, outcome, unit, updated_at, inputs)
SELECT id, process_id, status, outcome, unit, updated_at,
       CASE WHEN json_valid(state) THEN json_extract(state, '$.vars.household', '$.vars.area',
            '$.vars.request', '$.vars.applicant_name', '$.vars.bank',
            '$.vars.assessment.program') END
FROM instances WHERE outcome IS NOT NULL;
