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
    // A cart that stores its ECGs by DICOM C-STORE, or exports files that `ferry upload
    // --watch` sends with the cart's own device token (see `cart_token`).
    ("island-clinic", DeviceKind::EcgCart, "Island Clinic ECG cart", CART_AE),
    ("mountain-clinic", DeviceKind::Modality, "Mountain Clinic ultrasound", "MOUNTAINUS"),
    ("county-hospital", DeviceKind::Modality, "County Hospital CT", "COUNTYCT"),
];

/// The demo's routing: the clinics' imaging to the city hospital's radiologists, their ECGs
/// to its ECG reading centre: (centre, from, kind, priority).
pub const ROUTING: &[(&str, &str, crate::reading::Kind)] = &[
    ("city-hospital", "island-clinic", crate::reading::Kind::Imaging),
    ("city-hospital", "mountain-clinic", crate::reading::Kind::Imaging),
    ("city-hospital", "island-clinic", crate::reading::Kind::Ecg),
    ("city-hospital", "mountain-clinic", crate::reading::Kind::Ecg),
];

/// Seeds the demo's routing rules (what `ferry serve --demo` starts with; tests that are not
/// about reading leave studies unrouted). Returns how many were created.
pub async fn seed_routing(state: &Stores) -> anyhow::Result<usize> {
    let mut created = 0;
    for (centre, from, kind) in ROUTING {
        let new = crate::reading::store::NewRule {
            from_site: from.parse()?,
            subtree: false,
            kind: *kind,
            modalities: vec![],
            priority: crate::reading::Priority::Routine,
        };
        match operator::add_routing_rule(state, &centre.parse()?, new).await {
            Ok(_) => created += 1,
            Err(e) if operator::is_exists(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(created)
}

/// The island clinic's ECG cart.
pub const CART_AE: &str = "ISLANDECG";

/// The demo cart's device token: derived from the demo password, so a demo started with its
/// own password does not share a token anyone could read here.
pub fn cart_token(password: &str) -> String {
    let digest = crate::ids::hash_secret(&format!("ferry demo ECG cart {password}"));
    format!("{}{}", crate::auth::tokens::TOKEN_PREFIX, &digest[..32])
}

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
    let token = cart_token(password);
    // Created once; later starts find the same token (the operator's step is audited).
    operator::create_device_token(state, CART_AE, "demo cart export", None, Some(&token)).await?;
    Ok(created)
}
