import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { clawBureauPath } from '../helpers/clawbureau.js';

const schema = (name: string): object =>
  JSON.parse(readFileSync(clawBureauPath(`upstream/packages/schema/policy/${name}`), 'utf8')) as object;

/**
 * Claw Bureau's WPC v1 payload and envelope schemas (draft 2020-12, formats on), read from the
 * shared reference directory. The envelope schema `$ref`s the payload schema by its `$id`.
 */
const ajv = new Ajv2020({ allErrors: true, strict: false });
addFormats.default(ajv);
ajv.addSchema(schema('work_policy_contract.v1.json'));

export const validateCbPayload = ajv.getSchema(
  'https://schemas.clawbureau.org/claw.policy.work_policy_contract.v1.json',
)!;
export const validateCbEnvelope = ajv.compile(schema('work_policy_contract_envelope.v1.json'));
