//! The access policy: the one place that decides whether an actor may do an action on a
//! resource. Its core (`decide`) is pure. Its product is a [`Permit`], which store functions
//! for protected data demand as an argument, so no code path can reach that data without a
//! decision — and [`crate::auth::RequestCtx::permit`], the only way handlers obtain a permit,
//! writes the audit event in the same step.

use std::collections::HashSet;
use std::marker::PhantomData;

use crate::network::{Role, SiteId, UserId};

/// Who is acting, as far as the policy cares.
#[derive(Debug, Clone)]
pub struct ActorView {
    pub user: UserId,
    pub site: SiteId,
    pub roles: Vec<Role>,
    /// Sites this actor administers: their own and every site below it. Empty for non-admins.
    pub admin_scope: HashSet<SiteId>,
    /// True when the actor's site is a root of the network tree (no parent).
    pub at_root_site: bool,
    /// True for a registered device acting with its bearer token: it may only take the
    /// actions in [`DEVICE_ACTIONS`], for its own site.
    pub device: bool,
    /// Holds the `senior` specialty: signs others' drafts where reading is two-step.
    pub senior: bool,
}

impl ActorView {
    pub fn has_role(&self, r: Role) -> bool {
        self.roles.contains(&r)
    }
    fn administers(&self, site: &SiteId) -> bool {
        self.has_role(Role::Admin) && self.admin_scope.contains(site)
    }
}

/// What the resource is, for the decision and the audit trail.
#[derive(Debug, Clone)]
pub struct Target {
    /// The site the resource belongs to (for a new site: its parent; None for a new root).
    pub site: Option<SiteId>,
    /// The user the resource concerns, when it is a person's own (their tokens, say).
    pub subject: Option<UserId>,
    pub kind: &'static str,
    pub id: Option<String>,
    /// Sites the resource is shared with beyond its own (studies: shares).
    pub shared_with: Vec<SiteId>,
    /// People it is addressed to beyond its own site (a consult's specialists).
    pub parties: Vec<UserId>,
}

impl Target {
    pub fn network() -> Target {
        Target {
            site: None,
            subject: None,
            kind: "network",
            id: None,
            shared_with: vec![],
            parties: vec![],
        }
    }
    pub fn site(site: &SiteId, kind: &'static str, id: Option<String>) -> Target {
        Target {
            site: Some(site.clone()),
            subject: None,
            kind,
            id,
            shared_with: vec![],
            parties: vec![],
        }
    }
    pub fn of_user(site: &SiteId, user: &UserId, kind: &'static str, id: Option<String>) -> Target {
        Target {
            site: Some(site.clone()),
            subject: Some(user.clone()),
            kind,
            id,
            shared_with: vec![],
            parties: vec![],
        }
    }
}

/// How an action is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Any signed-in user (the network directory: site names and tiers).
    AnyUser,
    /// An admin whose scope holds the target site.
    AdminOfSite,
    /// An admin of the target site, or the person the resource belongs to.
    AdminOrSelf,
    /// Creating a site: an admin of its parent; a new root site needs a root-site admin.
    CreateSite,
    /// Anyone of the target site itself (sending its own studies, sharing them).
    OwnSite,
    /// Anyone of the target site or of a site it is shared with (patient data).
    SiteOrShared,
    /// Anyone of the target site, or a person it is addressed to (a consult: its requesting
    /// clinic, the specialists who may answer it, the one who accepted it).
    SiteOrParty,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(&'static str),
}

/// The pure decision.
pub fn decide(actor: &ActorView, rule: Rule, target: &Target) -> Decision {
    let is_self = target.subject.as_ref() == Some(&actor.user);
    let admin_of_target = target.site.as_ref().is_some_and(|s| actor.administers(s));
    match rule {
        Rule::AnyUser => Decision::Allow,
        Rule::AdminOfSite if admin_of_target => Decision::Allow,
        Rule::AdminOfSite => Decision::Deny("requires the admin role for that site"),
        Rule::AdminOrSelf if admin_of_target || is_self => Decision::Allow,
        Rule::AdminOrSelf => {
            Decision::Deny("requires the admin role for that site, or being that user")
        }
        Rule::CreateSite => match &target.site {
            Some(_) if admin_of_target => Decision::Allow,
            None if actor.has_role(Role::Admin) && actor.at_root_site => Decision::Allow,
            _ => Decision::Deny("requires the admin role for the parent site"),
        },
        Rule::OwnSite if target.site.as_ref() == Some(&actor.site) => Decision::Allow,
        Rule::OwnSite => Decision::Deny("belongs to another site"),
        Rule::SiteOrShared
            if target.site.as_ref() == Some(&actor.site)
                || target.shared_with.contains(&actor.site) =>
        {
            Decision::Allow
        }
        Rule::SiteOrShared => Decision::Deny("not shared with your site"),
        Rule::SiteOrParty
            if target.site.as_ref() == Some(&actor.site)
                || target.parties.contains(&actor.user) =>
        {
            Decision::Allow
        }
        Rule::SiteOrParty => Decision::Deny("not addressed to you or your site"),
    }
}

/// An action as a type, so that store functions can ask for a permit for exactly that action.
pub trait Action {
    /// Audit name, e.g. `user.create`.
    const NAME: &'static str;
    const RULE: Rule;
    /// Whether an allowed attempt is audited (denied ones always are).
    const AUDIT_ALLOWED: bool;
    /// Whether a refusal answers "not found" rather than "forbidden", so that patient data
    /// of other sites does not even show that it exists.
    const HIDDEN: bool;
}

macro_rules! actions {
    ($($(#[$m:meta])* $ty:ident = $name:literal, $rule:ident, audit: $audit:literal, hidden: $hidden:literal;)*) => {
        $(
            $(#[$m])*
            #[derive(Debug)]
            pub struct $ty;
            impl Action for $ty {
                const NAME: &'static str = $name;
                const RULE: Rule = Rule::$rule;
                const AUDIT_ALLOWED: bool = $audit;
                const HIDDEN: bool = $hidden;
            }
        )*
        /// Every action with its rule and whether refusals are hidden as "not found": the
        /// access-matrix tests walk this list.
        pub const ALL_ACTIONS: &[(&str, Rule, bool)] = &[$(($name, Rule::$rule, $hidden)),*];
    };
}

actions! {
    SiteList = "site.list", AnyUser, audit: false, hidden: false;
    SiteRead = "site.read", AnyUser, audit: false, hidden: false;
    /// The people directory: names, sites and roles of given people (no patient data, no
    /// credentials), so pages can show people by name.
    PeopleDirectory = "people.directory", AnyUser, audit: false, hidden: false;
    SiteCreate = "site.create", CreateSite, audit: true, hidden: false;
    UserList = "user.list", AdminOfSite, audit: true, hidden: false;
    UserRead = "user.read", AdminOrSelf, audit: true, hidden: false;
    UserCreate = "user.create", AdminOfSite, audit: true, hidden: false;
    UserUpdate = "user.update", AdminOfSite, audit: true, hidden: false;
    DeviceList = "device.list", AdminOfSite, audit: true, hidden: false;
    DeviceCreate = "device.create", AdminOfSite, audit: true, hidden: false;
    DeviceDelete = "device.delete", AdminOfSite, audit: true, hidden: false;
    /// Issuing a bearer token to a device of the site (an ECG cart that exports files).
    DeviceTokenCreate = "device.token.create", AdminOfSite, audit: true, hidden: false;
    DeviceTokenRevoke = "device.token.revoke", AdminOfSite, audit: true, hidden: false;
    TokenList = "token.list", AdminOrSelf, audit: true, hidden: false;
    TokenCreate = "token.create", AdminOrSelf, audit: true, hidden: false;
    TokenRevoke = "token.revoke", AdminOrSelf, audit: true, hidden: false;
    AuditRead = "audit.read", AdminOfSite, audit: true, hidden: false;
    /// Sending instances for the actor's own site (STOW-RS, uploads, C-STORE).
    ImagingStore = "imaging.store", OwnSite, audit: true, hidden: false;
    /// Searching studies (the search itself sees only visible studies).
    ImagingSearch = "imaging.search", AnyUser, audit: true, hidden: false;
    /// Reading one study's series, instances, metadata or pixels.
    ImagingRead = "imaging.read", SiteOrShared, audit: true, hidden: true;
    /// Listing the ECGs one may see (the search sees only those; each listed one is a read).
    EcgSearch = "ecg.search", AnyUser, audit: true, hidden: false;
    /// Reading one ECG: its record, waveform and original bytes.
    EcgRead = "ecg.read", SiteOrShared, audit: true, hidden: true;
    /// Sharing a study of one's own site with another site.
    StudyShare = "study.share", OwnSite, audit: true, hidden: true;
    /// Requesting a consult for one's own site (clinicians only; the creation itself is
    /// audited with the new consult, in one transaction).
    ConsultCreate = "consult.create", OwnSite, audit: false, hidden: false;
    /// Listing the consults that concern one (the list holds only what they may read).
    ConsultSearch = "consult.search", AnyUser, audit: true, hidden: false;
    /// Reading a consult: its case, studies and opinions.
    ConsultRead = "consult.read", SiteOrParty, audit: true, hidden: true;
    /// A step in a consult's life (accept, decline, cancel, complete, sign, acknowledge): the
    /// consult core decides which steps the person may take; the step is audited by name.
    ConsultUpdate = "consult.update", SiteOrParty, audit: false, hidden: true;
    /// Listing reading requests: a centre's worklist, a clinic's own requests (the list holds
    /// only those; each listed one is recorded as read).
    ReadingSearch = "reading.search", AnyUser, audit: true, hidden: false;
    /// Reading one request and its reports: its sending clinic, and the centre it was sent to
    /// (the target's site is the clinic; the centre is a site it is shared with).
    ReadingRead = "reading.read", SiteOrShared, audit: true, hidden: true;
    /// A step on a request (send, cancel, claim, release, reassign, draft, sign, amend): the
    /// reading core decides which steps the person may take; each is audited by name.
    ReadingUpdate = "reading.update", SiteOrShared, audit: false, hidden: true;
    /// Asking a centre to read a study or ECG of one's own site (the core: clinicians).
    ReadingCreate = "reading.create", OwnSite, audit: false, hidden: true;
    /// A centre's routing rules.
    RoutingList = "routing.list", AdminOfSite, audit: true, hidden: false;
    RoutingManage = "routing.manage", AdminOfSite, audit: true, hidden: false;
    /// A centre's report templates (reading them is part of reading a request).
    TemplateManage = "reading.template.manage", AdminOfSite, audit: true, hidden: false;
    /// Scheduling a training session for one's own site (trainers only; the creation itself
    /// is audited with the new session, in one transaction).
    BroadcastCreate = "broadcast.create", OwnSite, audit: false, hidden: false;
    /// Listing the sessions one may see (those of one's site and those for its audience).
    BroadcastSearch = "broadcast.search", AnyUser, audit: true, hidden: false;
    /// One session: its own site's people and its audience's (the sites it is shared with).
    BroadcastRead = "broadcast.read", SiteOrShared, audit: true, hidden: true;
    /// A session's attendance (who watched, from which site, for how long): the people of the
    /// session's own site, its training office among them.
    BroadcastAttendance = "broadcast.attendance", OwnSite, audit: true, hidden: false;
}

/// Proof that the policy allowed action `A` on a target. Only this module makes them.
#[derive(Debug)]
pub struct Permit<A: Action> {
    target: Target,
    actor: Option<UserId>,
    _action: PhantomData<A>,
}

impl<A: Action> Permit<A> {
    /// The site the permit is for.
    pub fn site(&self) -> Option<&SiteId> {
        self.target.site.as_ref()
    }
    pub fn target(&self) -> &Target {
        &self.target
    }
    /// The acting user; None for the local operator (CLI).
    pub fn actor(&self) -> Option<&UserId> {
        self.actor.as_ref()
    }
}

/// What a device acting with its token may do: send for its own site, nothing else (it never
/// reads, lists or administers anything).
pub const DEVICE_ACTIONS: &[&str] = &[ImagingStore::NAME];

/// Decides and, when allowed, issues the permit. Callers audit the outcome (see
/// `RequestCtx::permit`, which is the path handlers use).
pub(super) fn issue<A: Action>(
    actor: &ActorView,
    target: Target,
) -> Result<Permit<A>, &'static str> {
    if actor.device && !DEVICE_ACTIONS.contains(&A::NAME) {
        return Err("a device may only send for its own site");
    }
    match decide(actor, A::RULE, &target) {
        Decision::Allow => {
            Ok(Permit { target, actor: Some(actor.user.clone()), _action: PhantomData })
        }
        Decision::Deny(why) => Err(why),
    }
}

/// A permit for the operator at the server's console (`ferry` subcommands): whoever can run
/// the binary against the database already holds every power; the CLI audits as `operator`.
pub(super) fn operator_permit<A: Action>(target: Target) -> Permit<A> {
    Permit { target, actor: None, _action: PhantomData }
}

/// What the person may do, as keys the web app turns into its home page. Derived from the
/// same roles and scope the policy decides with; the server still decides every request.
pub fn capabilities(actor: &ActorView) -> Vec<&'static str> {
    let mut caps = vec!["network.directory", "tokens.own"];
    let by_role: &[(Role, &[&'static str])] = &[
        (Role::Clinician, &["imaging.send", "ecg.send", "consult.request"]),
        (Role::Specialist, &["imaging.read", "ecg.view", "consult.answer", "reading.worklist"]),
        (Role::Reader, &["ecg.read", "reading.worklist"]),
        (Role::Trainer, &["training.broadcast"]),
        (Role::Admin, &["admin.sites", "admin.users", "admin.devices", "admin.audit"]),
    ];
    for (role, keys) in by_role {
        if actor.has_role(*role) {
            caps.extend_from_slice(keys);
        }
    }
    caps.push("training.watch");
    caps.dedup();
    caps
}

/// A permit for a registered device (a DICOM AE title) acting for its own site: only actions
/// whose rule is `OwnSite` can be granted, checked at compile time. The caller audits, with the
/// device as actor.
pub(super) fn device_permit<A: Action>(target: Target) -> Permit<A> {
    const { assert!(matches!(A::RULE, Rule::OwnSite), "devices only act for their own site") };
    Permit { target, actor: None, _action: PhantomData }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(roles: &[Role], site: &str, scope: &[&str], root: bool) -> ActorView {
        ActorView {
            user: "u".parse().unwrap(),
            site: site.parse().unwrap(),
            roles: roles.to_vec(),
            admin_scope: scope.iter().map(|s| s.parse().unwrap()).collect(),
            at_root_site: root,
            device: false,
            senior: false,
        }
    }

    fn t(site: &str) -> Target {
        Target::site(&site.parse().unwrap(), "x", None)
    }

    /// Role × own site / other site × rule.
    #[test]
    fn decision_table() {
        use Decision::*;
        let island = ["island-clinic"];
        let cases: Vec<(ActorView, Rule, Target, bool)> = vec![
            // Every role may read the directory.
            (
                actor(&[Role::Clinician], "island-clinic", &[], false),
                Rule::AnyUser,
                t("city-hospital"),
                true,
            ),
            // Admin data: only an admin of that site.
            (
                actor(&[Role::Clinician], "island-clinic", &[], false),
                Rule::AdminOfSite,
                t("island-clinic"),
                false,
            ),
            (
                actor(&[Role::Specialist], "island-clinic", &[], false),
                Rule::AdminOfSite,
                t("island-clinic"),
                false,
            ),
            (
                actor(&[Role::Reader], "island-clinic", &[], false),
                Rule::AdminOfSite,
                t("island-clinic"),
                false,
            ),
            (
                actor(&[Role::Trainer], "island-clinic", &[], false),
                Rule::AdminOfSite,
                t("island-clinic"),
                false,
            ),
            (
                actor(&[Role::Admin], "island-clinic", &island, false),
                Rule::AdminOfSite,
                t("island-clinic"),
                true,
            ),
            (
                actor(&[Role::Admin], "island-clinic", &island, false),
                Rule::AdminOfSite,
                t("mountain-clinic"),
                false,
            ),
            (
                actor(&[Role::Admin], "city-hospital", &["city-hospital", "island-clinic"], true),
                Rule::AdminOfSite,
                t("island-clinic"),
                true,
            ),
            // Scope without the role grants nothing.
            (
                actor(&[Role::Clinician], "island-clinic", &island, false),
                Rule::AdminOfSite,
                t("island-clinic"),
                false,
            ),
            // Own tokens: self or admin.
            (
                actor(&[Role::Clinician], "island-clinic", &[], false),
                Rule::AdminOrSelf,
                Target::of_user(
                    &"island-clinic".parse().unwrap(),
                    &"u".parse().unwrap(),
                    "token",
                    None,
                ),
                true,
            ),
            (
                actor(&[Role::Clinician], "island-clinic", &[], false),
                Rule::AdminOrSelf,
                Target::of_user(
                    &"island-clinic".parse().unwrap(),
                    &"v".parse().unwrap(),
                    "token",
                    None,
                ),
                false,
            ),
            // New sites.
            (
                actor(&[Role::Admin], "island-clinic", &island, false),
                Rule::CreateSite,
                t("island-clinic"),
                true,
            ),
            (
                actor(&[Role::Admin], "island-clinic", &island, false),
                Rule::CreateSite,
                t("city-hospital"),
                false,
            ),
            (
                actor(&[Role::Admin], "island-clinic", &island, false),
                Rule::CreateSite,
                Target::network(),
                false,
            ),
            (
                actor(&[Role::Admin], "city-hospital", &["city-hospital"], true),
                Rule::CreateSite,
                Target::network(),
                true,
            ),
            (
                actor(&[Role::Clinician], "city-hospital", &[], true),
                Rule::CreateSite,
                Target::network(),
                false,
            ),
        ];
        for (i, (a, rule, target, allowed)) in cases.into_iter().enumerate() {
            let d = decide(&a, rule, &target);
            assert_eq!(d == Allow, allowed, "case {i}: {a:?} {rule:?} {target:?} -> {d:?}");
        }
    }

    /// A device holds no role, but even with one it may only send for its own site.
    #[test]
    fn devices_only_send_for_their_own_site() {
        let mut cart = actor(&[Role::Admin], "island-clinic", &["island-clinic"], false);
        cart.device = true;
        let own = t("island-clinic");
        assert!(issue::<ImagingStore>(&cart, own.clone()).is_ok());
        assert!(issue::<ImagingStore>(&cart, t("mountain-clinic")).is_err());
        assert!(issue::<EcgRead>(&cart, own.clone()).is_err());
        assert!(issue::<EcgSearch>(&cart, own.clone()).is_err());
        assert!(issue::<ImagingSearch>(&cart, own.clone()).is_err());
        assert!(issue::<StudyShare>(&cart, own.clone()).is_err());
        assert!(issue::<UserList>(&cart, own.clone()).is_err());
        assert!(issue::<SiteList>(&cart, own).is_err());
    }
}
