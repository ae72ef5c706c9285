//! Each viewer's connection health, and each site's, for the trainer's page — without I/O.
//! A viewer is `good` on a working link with its video above the lowest layer (or on the only
//! one) and little loss; `fair` on the lowest of several layers, with some loss (2 % or more)
//! or a long round trip (400 ms or more); `poor` with its link down, its video paused, or heavy
//! loss (10 % or more); `connecting` until its connection is up. A site is as its worst
//! connected viewer; the sites come worst first, so the one that needs a word comes first.

use serde::Serialize;

use crate::sfu::room::PeerHealth;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Grade {
    Good,
    Fair,
    Poor,
    Connecting,
}

/// Loss at or above this share makes a viewer `fair`; at or above `POOR_LOSS`, `poor`.
pub const FAIR_LOSS: f32 = 0.02;
pub const POOR_LOSS: f32 = 0.10;
/// A round trip this long makes a viewer `fair`.
pub const FAIR_RTT_MS: u32 = 400;

pub fn grade(h: &PeerHealth) -> Grade {
    let loss = h.loss.unwrap_or(0.0);
    if !h.connected {
        Grade::Connecting
    } else if !h.link_up || (h.layers > 0 && h.layer.is_none()) || loss >= POOR_LOSS {
        // No layer while there is video to send: its video is paused. A presenter sending
        // audio only (no layers) leaves every viewer without one, and that is not their link.
        Grade::Poor
    } else if loss >= FAIR_LOSS
        || h.rtt_ms.is_some_and(|r| r >= FAIR_RTT_MS)
        || (h.layers > 1 && h.layer == Some(0))
    {
        Grade::Fair
    } else {
        Grade::Good
    }
}

/// One site's viewers, summed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SiteHealth {
    pub site: String,
    pub grade: Grade,
    pub viewers: usize,
    pub good: usize,
    pub fair: usize,
    pub poor: usize,
    pub connecting: usize,
    /// Viewers whose link is down now.
    pub links_down: usize,
    /// Viewers whose video is paused (audio only).
    pub audio_only: usize,
    /// The lowest bandwidth estimate among its connected viewers, kbit/s.
    pub estimate_kbps_min: Option<u64>,
    pub loss_max: Option<f32>,
    pub rtt_ms_max: Option<u32>,
}

/// The sites of `viewers` (each viewer with its site), worst first, then by site.
pub fn by_site(viewers: &[(String, PeerHealth)]) -> Vec<SiteHealth> {
    let mut sites: Vec<SiteHealth> = vec![];
    for (site, h) in viewers {
        let i = match sites.iter().position(|s| &s.site == site) {
            Some(i) => i,
            None => {
                sites.push(SiteHealth {
                    site: site.clone(),
                    grade: Grade::Connecting,
                    viewers: 0,
                    good: 0,
                    fair: 0,
                    poor: 0,
                    connecting: 0,
                    links_down: 0,
                    audio_only: 0,
                    estimate_kbps_min: None,
                    loss_max: None,
                    rtt_ms_max: None,
                });
                sites.len() - 1
            }
        };
        let s = &mut sites[i];
        let g = grade(h);
        s.viewers += 1;
        match g {
            Grade::Good => s.good += 1,
            Grade::Fair => s.fair += 1,
            Grade::Poor => s.poor += 1,
            Grade::Connecting => s.connecting += 1,
        }
        if g == Grade::Connecting {
            continue;
        }
        // The worst connected viewer sets the site's grade.
        s.grade = if s.grade == Grade::Connecting { g } else { s.grade.max(g) };
        s.links_down += usize::from(!h.link_up);
        s.audio_only += usize::from(h.link_up && h.layers > 0 && h.layer.is_none());
        if h.estimate_bps > 0 {
            let kbps = h.estimate_bps / 1000;
            s.estimate_kbps_min = Some(s.estimate_kbps_min.map_or(kbps, |m| m.min(kbps)));
        }
        if let Some(l) = h.loss {
            s.loss_max = Some(s.loss_max.map_or(l, |m| m.max(l)));
        }
        if let Some(r) = h.rtt_ms {
            s.rtt_ms_max = Some(s.rtt_ms_max.map_or(r, |m| m.max(r)));
        }
    }
    let rank = |g: Grade| match g {
        Grade::Poor => 0,
        Grade::Fair => 1,
        Grade::Good => 2,
        Grade::Connecting => 3,
    };
    sites.sort_by(|a, b| rank(a.grade).cmp(&rank(b.grade)).then_with(|| a.site.cmp(&b.site)));
    sites
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(layer: Option<usize>, loss: Option<f32>, rtt: Option<u32>) -> PeerHealth {
        PeerHealth {
            peer: 1,
            connected: true,
            link_up: true,
            layer,
            layers: 3,
            estimate_bps: 1_500_000,
            loss,
            rtt_ms: rtt,
        }
    }

    #[test]
    fn viewers_are_graded_by_link_layer_loss_and_round_trip() {
        assert_eq!(grade(&h(Some(2), Some(0.0), Some(40))), Grade::Good);
        assert_eq!(grade(&h(Some(1), None, None)), Grade::Good);
        assert_eq!(grade(&h(Some(0), Some(0.0), Some(40))), Grade::Fair, "lowest of three");
        assert_eq!(grade(&PeerHealth { layers: 1, ..h(Some(0), None, None) }), Grade::Good);
        assert_eq!(grade(&h(Some(2), Some(0.03), None)), Grade::Fair);
        assert_eq!(grade(&h(Some(2), None, Some(450))), Grade::Fair);
        assert_eq!(grade(&h(Some(2), Some(0.12), None)), Grade::Poor);
        assert_eq!(grade(&h(None, None, None)), Grade::Poor, "audio only");
        let nothing_to_watch = PeerHealth { layers: 0, ..h(None, None, None) };
        assert_eq!(grade(&nothing_to_watch), Grade::Good, "a presenter without video");
        assert_eq!(grade(&PeerHealth { link_up: false, ..h(Some(2), None, None) }), Grade::Poor);
        let waiting = PeerHealth { connected: false, link_up: false, ..h(None, None, None) };
        assert_eq!(grade(&waiting), Grade::Connecting);
    }

    #[test]
    fn a_site_is_as_its_worst_connected_viewer_and_the_worst_sites_come_first() {
        let waiting = PeerHealth { connected: false, link_up: false, ..h(None, None, None) };
        let rows = vec![
            ("county".to_string(), h(Some(2), Some(0.0), Some(30))),
            ("island".to_string(), h(Some(2), Some(0.0), Some(30))),
            ("island".to_string(), h(Some(0), Some(0.15), Some(300))),
            ("mountain".to_string(), waiting),
            ("county".to_string(), PeerHealth { estimate_bps: 700_000, ..h(Some(1), None, None) }),
        ];
        let sites = by_site(&rows);
        let order: Vec<(&str, Grade)> = sites.iter().map(|s| (s.site.as_str(), s.grade)).collect();
        assert_eq!(
            order,
            [("island", Grade::Poor), ("county", Grade::Good), ("mountain", Grade::Connecting)]
        );
        let island = &sites[0];
        assert_eq!((island.viewers, island.good, island.poor), (2, 1, 1));
        assert_eq!((island.loss_max, island.rtt_ms_max), (Some(0.15), Some(300)));
        assert_eq!(sites[1].estimate_kbps_min, Some(700));
        assert_eq!(sites[2].connecting, 1);
    }
}
