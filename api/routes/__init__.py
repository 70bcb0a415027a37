"""One blueprint per resource family: ``triage`` (the FHIR API), ``health`` (service metadata)."""
