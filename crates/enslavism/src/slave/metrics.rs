//! The slave's figures as Prometheus metrics (OpenMetrics text, through
//! [`crate::metrics::encode`]). Nothing is registered ahead: a scrape takes
//! a snapshot of the counters the shards keep and encodes it with a
//! [`Collector`], so that the engine never updates a metric object per message.

use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::stats::{ChannelStats, SetupSnapshot, SETUP_BUCKETS};
use super::SessionId;

/// The prefix of every metric name of a slave.
pub const PREFIX: &str = "enslavism_slave";

/// One connection's series (with `metrics_per_connection`).
#[derive(Debug, Clone)]
pub(crate) struct ConnectionRow {
    pub(crate) session: SessionId,
    pub(crate) client_id: u32,
    pub(crate) traffic: ChannelStats,
    pub(crate) rtt: Option<Duration>,
}

/// What one scrape shows.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    pub(crate) connections: usize,
    pub(crate) channels: usize,
    pub(crate) traffic: ChannelStats,
    pub(crate) setup: SetupSnapshot,
    /// Empty unless per-connection metrics are on.
    pub(crate) per_connection: Vec<ConnectionRow>,
}

/// The snapshot as an OpenMetrics text exposition.
pub(crate) fn render(snapshot: Snapshot) -> String {
    let mut registry = Registry::with_prefix(PREFIX);
    registry.register_collector(Box::new(snapshot));
    crate::metrics::encode(&registry)
}

/// A series' labels, as `(name, value)` pairs.
type Labels<'a> = &'a [(&'a str, &'a str)];

fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    series: &[(Labels<'_>, u64)],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in series {
        metric.encode_family(labels)?.encode_counter::<NoLabelSet, _, u64>(value, None)?;
    }
    Ok(())
}

fn gauge(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: usize) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(value as i64);
    g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        gauge(e, "connections", "Peer connections the slave holds (from an accepted offer to the release).", self.connections)?;
        gauge(e, "channels", "Data channels open.", self.channels)?;
        let t = &self.traffic;
        let (inbound, outbound): (Labels<'_>, Labels<'_>) = (&[("direction", "in")], &[("direction", "out")]);
        counter(
            e,
            "messages",
            "Data-channel messages received from clients (in) and handed to SCTP for them (out).",
            &[(inbound, t.messages_in), (outbound, t.messages_out)],
        )?;
        counter(e, "bytes", "Payload bytes of those messages.", &[(inbound, t.bytes_in), (outbound, t.bytes_out)])?;

        let buckets: Vec<(f64, u64)> =
            SETUP_BUCKETS.iter().map(|ms| ms / 1000.0).chain([f64::INFINITY]).zip(self.setup.buckets.iter().copied()).collect();
        let mut setup = encoder.encode_descriptor(
            "setup",
            "Connection setup time: from the offer's arrival at the slave to the first data channel open.",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        setup.encode_histogram::<NoLabelSet>(self.setup.sum.as_secs_f64(), self.setup.count(), &buckets, None)?;

        if self.per_connection.is_empty() {
            return Ok(());
        }
        let e = &mut encoder;
        let ids: Vec<(String, String)> =
            self.per_connection.iter().map(|row| (row.session.to_string(), row.client_id.to_string())).collect();
        let mut rtt = e.encode_descriptor(
            "connection_rtt",
            "Round-trip time of the connection's latest ICE check (read every 2 s).",
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?;
        for (row, (session, client)) in self.per_connection.iter().zip(&ids) {
            if let Some(value) = row.rtt {
                let labels = [("connection", session.as_str()), ("client", client.as_str())];
                rtt.encode_family(&labels)?.encode_gauge(&value.as_secs_f64())?;
            }
        }
        for (name, help, pick) in [
            ("connection_messages", "Data-channel messages of one connection.", messages as fn(&ChannelStats) -> (u64, u64)),
            ("connection_bytes", "Payload bytes of one connection's messages.", bytes),
        ] {
            let mut metric = e.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (row, (session, client)) in self.per_connection.iter().zip(&ids) {
                let (inbound, outbound) = pick(&row.traffic);
                for (direction, value) in [("in", inbound), ("out", outbound)] {
                    let labels = [("connection", session.as_str()), ("client", client.as_str()), ("direction", direction)];
                    metric.encode_family(&labels)?.encode_counter::<NoLabelSet, _, u64>(&value, None)?;
                }
            }
        }
        Ok(())
    }
}

fn messages(t: &ChannelStats) -> (u64, u64) {
    (t.messages_in, t.messages_out)
}

fn bytes(t: &ChannelStats) -> (u64, u64) {
    (t.bytes_in, t.bytes_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family() {
        let mut snapshot = Snapshot {
            connections: 2,
            channels: 3,
            traffic: ChannelStats { messages_in: 5, messages_out: 6, bytes_in: 50, bytes_out: 60 },
            setup: SetupSnapshot { buckets: vec![0; SETUP_BUCKETS.len() + 1], sum: Duration::from_millis(9) },
            per_connection: Vec::new(),
        };
        snapshot.setup.buckets[7] = 1;
        let text = render(snapshot.clone());
        assert!(text.contains("enslavism_slave_connections 2\n"), "{text}");
        assert!(text.contains("enslavism_slave_messages_total{direction=\"in\"} 5\n"), "{text}");
        assert!(text.contains("enslavism_slave_bytes_total{direction=\"out\"} 60\n"), "{text}");
        assert!(text.contains("enslavism_slave_setup_seconds_bucket{le=\"0.01\"} 1\n"), "{text}");
        assert!(text.contains("enslavism_slave_setup_seconds_count 1\n"), "{text}");
        assert!(!text.contains("connection_"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        snapshot.per_connection.push(ConnectionRow {
            session: 7,
            client_id: 3,
            traffic: ChannelStats { messages_in: 1, messages_out: 2, bytes_in: 10, bytes_out: 20 },
            rtt: Some(Duration::from_millis(2)),
        });
        let text = render(snapshot);
        assert!(text.contains("enslavism_slave_connection_rtt_seconds{connection=\"7\",client=\"3\"} 0.002\n"), "{text}");
        assert!(
            text.contains("enslavism_slave_connection_bytes_total{connection=\"7\",client=\"3\",direction=\"out\"} 20\n"),
            "{text}"
        );
    }
}
