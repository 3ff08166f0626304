// Types of the generated policy-schema-validators.js (scripts/compile-policy-schemas.mjs).
import type { ValidateFunction } from 'ajv';

/** SHA-256 (hex) of the schema files the validators were compiled from. */
export declare const SCHEMA_SHA256: { readonly wpc: string; readonly groups: string };
export declare const wpc: ValidateFunction;
export declare const groups: ValidateFunction;
