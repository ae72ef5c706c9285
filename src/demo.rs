//! The demo network: four sites from city hospital to island clinic, a person in each role,
//! and the imaging devices of the clinics. Seeding is idempotent: what exists is left alone.

use crate::network::store::{site_exists, site_of_user};
use crate::network::*;
use crate::operator;
use crate::state::Stores;

pub const DEFAULT_PASSWORD: &str = "ferry-demo";

/// (id, name, tier, kind, parent)
pub const SITES: &[(&str, &str, Tier, SiteKind, Option<&str>)] = &[
    (
        "city-hospital",
        "City Hospital (imaging and ECG reading centres)",
        Tier::City,
        SiteKind::Hospital,
        None,
    ),
    ("county-hospital", "County Hospital", Tier::County, SiteKind::Hospital, Some("city-hospital")),
    ("island-clinic", "Island Clinic", Tier::Village, SiteKind::Clinic, Some("county-hospital")),
    (
        "mountain-clinic",
        "Mountain Clinic",
        Tier::Village,
        SiteKind::Clinic,
        Some("county-hospital"),
    ),
];

/// A demo person: login, display name, site, roles, specialties.
pub type DemoUser =
    (&'static str, &'static str, &'static str, &'static [Role], &'static [&'static str]);

pub const USERS: &[DemoUser] = &[
    ("admin", "Network Administrator", "city-hospital", &[Role::Admin], &[]),
    ("dr-li", "Dr Li", "city-hospital", &[Role::Specialist], &["radiology"]),
    ("dr-chen", "Dr Chen", "city-hospital", &[Role::Reader], &["cardiology", "ecg"]),
    ("dr-zhao", "Dr Zhao", "island-clinic", &[Role::Clinician], &[]),
    ("dr-ma", "Dr Ma", "mountain-clinic", &[Role::Clinician], &[]),
    ("trainer-sun", "Sun Wei", "city-hospital", &[Role::Trainer], &[]),
];

/// (site, kind, name, AE title)
pub const DEVICES: &[(&str, DeviceKind, &str, &str)] = &[
    ("island-clinic", DeviceKind::Modality, "Island Clinic CT", "ISLANDCT"),
    // A cart that stores its ECGs by DICOM C-STORE; carts that export files are sent by
    // `ferry upload --watch` with a clinician's token.
    ("island-clinic", DeviceKind::EcgCart, "Island Clinic ECG cart", "ISLANDECG"),
    ("mountain-clinic", DeviceKind::Modality, "Mountain Clinic ultrasound", "MOUNTAINUS"),
    ("county-hospital", DeviceKind::Modality, "County Hospital CT", "COUNTYCT"),
];

/// Seeds what is missing; returns how many records were created.
pub async fn seed(state: &Stores, password: &str) -> anyhow::Result<usize> {
    let mut created = 0;
    for (id, name, tier, kind, parent) in SITES {
        let id: SiteId = id.parse()?;
        if site_exists(&state.db, &id).await? {
            continue;
        }
        let new = NewSite {
            id,
            name: name.to_string(),
            tier: *tier,
            kind: *kind,
            parent: parent.map(|p| p.parse()).transpose()?,
        };
        operator::add_site(state, new).await?;
        created += 1;
    }
    for (id, name, site, roles, specs) in USERS {
        let id: UserId = id.parse()?;
        if site_of_user(&state.db, &id).await?.is_some() {
            continue;
        }
        let new = NewUser {
            id,
            display_name: name.to_string(),
            roles: roles.to_vec(),
            specialties: specs.iter().map(|s| s.parse()).collect::<Result<_, _>>()?,
            password: Some(password.to_string()),
        };
        operator::add_user(state, &site.parse()?, new).await?;
        created += 1;
    }
    for (site, kind, name, ae) in DEVICES {
        let site: SiteId = site.parse()?;
        let new = NewDevice { kind: *kind, name: name.to_string(), ae_title: Some(ae.parse()?) };
        match operator::add_device(state, &site, new).await {
            Ok(_) => created += 1,
            Err(e) if operator::is_exists(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(created)
}
