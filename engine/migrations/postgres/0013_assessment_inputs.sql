-- Jiuzhu store, schema 13 (PostgreSQL): assessment inputs. A decided case's state carries
-- its assessment with the full trace (about 14 KB), while re-assessing it
-- (`simulate-policy`) reads six of its variables. This narrow row holds just those, as the
-- JSON text of [household, area, request, applicant_name, bank, assessment.program], beside
-- the instance columns the simulation pages by. It is written by the same transaction that
-- writes the instance with an outcome (store/group_write.rs), so it is never stale, and
-- deleted with the instance when the case is archived. Existing decided cases are filled
-- in here from their states.
CREATE TABLE assessment_inputs (
    instance_id TEXT    PRIMARY KEY REFERENCES instances (id),
    process_id  TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    outcome     TEXT    NOT NULL,
    unit        TEXT    COLLATE "C" NOT NULL,
    updated_at  BIGINT  NOT NULL,
    inputs      TEXT
);

INSERT INTO assessment_inputs (instance_id, process_id, status, outcome, unit, updated_at, inputs)
SELECT i.id, i.process_id, i.status, i.outcome, i.unit, i.updated_at,
       jsonb_build_array(v.household, v.area, v.request, v.applicant_name, v.bank,
                         v.assessment -> 'program')::text
FROM instances i CROSS JOIN LATERAL jsonb_to_record(
    CASE jsonb_typeof(i.state -> 'vars') WHEN 'object' THEN i.state -> 'vars' ELSE '{}'::jsonb END)
    AS v(household jsonb, area jsonb, request jsonb, applicant_name jsonb, bank jsonb,
         assessment jsonb)
WHERE i.outcome IS NOT NULL;
