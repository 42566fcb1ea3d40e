'use strict';
// Percentiles, medians and the figures' formatting for the benchmark.

/** The p-quantile (0..1) of `values` by the nearest-rank method; NaN when empty. */
function percentile(values, p) {
	if (values.length === 0) return NaN;
	const sorted = Float64Array.from(values).sort();
	const rank = Math.min(sorted.length, Math.max(1, Math.ceil(p * sorted.length)));
	return sorted[rank - 1];
}

/** The median of the finite numbers among `values`; NaN when there are none. */
function median(values) {
	const finite = values.filter(Number.isFinite);
	if (finite.length === 0) return NaN;
	const sorted = finite.sort((a, b) => a - b);
	const mid = sorted.length >> 1;
	return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** A figure for the table: few significant digits, thousands separated. */
function formatFigure(value) {
	if (value === undefined || value === null || Number.isNaN(value)) return '—';
	if (!Number.isFinite(value)) return String(value);
	const abs = Math.abs(value);
	const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : 2;
	return value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

module.exports = { percentile, median, formatFigure };
