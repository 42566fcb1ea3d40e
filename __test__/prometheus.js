'use strict';
// Metrics as a scraper reads them: the OpenMetrics text parser of Prometheus'
// own Python client (Debian's python3-prometheus-client), strict about the
// format. A text it refuses fails the test with the parser's message.

const { execFileSync } = require('node:child_process');

const PARSE = `
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
families = []
for family in text_string_to_metric_families(sys.stdin.read()):
    families.append({'name': family.name, 'type': family.type, 'help': family.documentation,
                     'samples': [{'name': s.name, 'labels': s.labels, 'value': s.value} for s in family.samples]})
print(json.dumps(families))
`;

/**
 * Parses an OpenMetrics exposition. Returns `[{ name, type, help, samples:
 * [{ name, labels, value }] }]`; throws what the parser said when it refuses
 * the text.
 */
function parseOpenMetrics(text) {
	try {
		return JSON.parse(execFileSync('/usr/bin/python3', ['-c', PARSE], { input: text, encoding: 'utf8', timeout: 10_000 }));
	} catch (err) {
		throw new Error(`the OpenMetrics parser refused the text: ${err.stderr || err.message}\n${text}`);
	}
}

/** The value of the sample `name` whose labels include `labels`; throws if there is none. */
function sample(families, name, labels = {}) {
	for (const family of families) {
		for (const s of family.samples) {
			if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) return s.value;
		}
	}
	throw new Error(`no sample ${name}${JSON.stringify(labels)} in ${families.map((f) => f.name).join(', ')}`);
}

module.exports = { parseOpenMetrics, sample };
