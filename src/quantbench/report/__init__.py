"""From records to the report: aggregate tables, findings and their wording, figures, markdown."""
