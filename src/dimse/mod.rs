//! DIMSE service class provider: C-ECHO and C-STORE on `dimse.addr`, over `dicom-ul`. Calling
//! AE titles must be devices registered to a site (`ferry device add --ae`), whose site then
//! owns what they send. Each received data set is stored exactly as received, wrapped in a
//! Part 10 file meta group, through the same checks and index as STOW-RS.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use dicom_core::{DataElement, PrimitiveValue, VR, dicom_value};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN;
use dicom_ul::association::AsyncServerAssociation;
use dicom_ul::association::server::{AccessControl, ServerAssociationOptions};
use dicom_ul::pdu::{
    AssociationRJServiceUserReason, PDataValue, PDataValueType, Pdu, UserIdentity,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::archive::status::*;
use crate::archive::store;
use crate::audit::{self, NewEvent, Outcome};
use crate::auth::policy::{ImagingStore, Target};
use crate::network::SiteId;
use crate::state::AppState;
use crate::time::now_ms;

/// Ferry's implementation class UID (under the UUID-derived 2.25 root) and version name.
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.149876350419815470722374632193489112871";
pub const IMPLEMENTATION_VERSION: &str = "FERRY_0_1";

const C_STORE_RQ: u16 = 0x0001;
const C_STORE_RSP: u16 = 0x8001;
const C_ECHO_RQ: u16 = 0x0030;
const C_ECHO_RSP: u16 = 0x8030;
const NO_DATA_SET: u16 = 0x0101;

/// The bound DIMSE listener.
pub struct DimseServer {
    listener: TcpListener,
}

impl DimseServer {
    pub async fn bind(addr: SocketAddr) -> std::io::Result<DimseServer> {
        Ok(DimseServer { listener: TcpListener::bind(addr).await? })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts associations until `stop`, each in its own task.
    pub async fn run(self, state: AppState, stop: CancellationToken) {
        loop {
            let (socket, peer) = tokio::select! {
                _ = stop.cancelled() => break,
                r = self.listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "DIMSE accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            // Without this, Nagle and delayed ACKs cost ~40 ms per C-STORE round trip.
            let _ = socket.set_nodelay(true);
            let state = state.clone();
            tokio::spawn(async move {
                if let Err(e) = serve_association(&state, socket, peer).await {
                    tracing::info!(error = %e, "DIMSE association ended with an error");
                }
            });
        }
    }
}

/// Calling AE titles → their sites; remembers who called, for the audit trail.
struct Devices {
    sites: HashMap<String, SiteId>,
    accept_unknown: bool,
    caller: Mutex<Option<String>>,
}

/// The association gate: shares `Devices` with the association task.
struct Gate(Arc<Devices>);

impl AccessControl for Gate {
    fn check_access(
        &self,
        this_ae_title: &str,
        calling_ae_title: &str,
        called_ae_title: &str,
        _user: Option<&UserIdentity>,
    ) -> Result<(), AssociationRJServiceUserReason> {
        let d = &self.0;
        *d.caller.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(calling_ae_title.trim().to_string());
        if called_ae_title.trim() != this_ae_title.trim() {
            return Err(AssociationRJServiceUserReason::CalledAETitleNotRecognized);
        }
        if d.sites.contains_key(calling_ae_title.trim()) || d.accept_unknown {
            Ok(())
        } else {
            Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized)
        }
    }
}

/// Who is on the other end of an association, for the audit trail.
struct Caller<'a> {
    ae: &'a str,
    site: Option<&'a SiteId>,
    peer: SocketAddr,
}

async fn record(
    state: &AppState,
    who: &Caller<'_>,
    action: &'static str,
    id: Option<String>,
    outcome: Outcome,
    detail: String,
) -> Result<(), crate::storage::DbError> {
    let e = NewEvent {
        at: now_ms(),
        actor: Some(format!("device:{}", who.ae)),
        actor_site: who.site.map(|s| s.to_string()),
        site: who.site.map(|s| s.to_string()),
        action,
        resource_kind: if action == "dimse.associate" { "association" } else { "study" },
        resource_id: id,
        outcome,
        client_addr: Some(who.peer.ip().to_string()),
        detail: Some(detail),
    };
    audit::record(&state.db, &e).await.inspect_err(|err| {
        tracing::error!(error = %err, action, "audit write failed for a DIMSE event");
    })
}

/// Keeps the peer's sends flowing: Linux delays ACKs (up to 40 ms), and a sender that leaves
/// Nagle on — dcmtk's storescu does by default — holds the last short segment of every
/// instance until that ACK comes, so each C-STORE waited tens of milliseconds for nothing.
/// Quick-ACK mode lapses on its own, so it is re-armed before every read. Holds a duplicate
/// of the socket's descriptor because the association owns the stream.
struct AckNow(Option<std::net::TcpStream>);

impl AckNow {
    fn new(socket: TcpStream) -> std::io::Result<(TcpStream, AckNow)> {
        let std = socket.into_std()?;
        let dup = std.try_clone().ok();
        Ok((TcpStream::from_std(std)?, AckNow(dup)))
    }

    fn arm(&self) {
        #[cfg(target_os = "linux")]
        if let Some(s) = &self.0 {
            let _ = socket2::SockRef::from(s).set_tcp_quickack(true);
        }
    }
}

async fn receive(
    assoc: &mut AsyncServerAssociation<TcpStream>,
    ack: &AckNow,
) -> Result<Pdu, dicom_ul::association::Error> {
    ack.arm();
    assoc.receive().await
}

async fn serve_association(
    state: &AppState,
    socket: TcpStream,
    peer: SocketAddr,
) -> anyhow::Result<()> {
    let (socket, ack) = AckNow::new(socket)?;
    let settings = &state.settings.dimse;
    let devices = Arc::new(Devices {
        sites: crate::network::store::ae_titles(&state.db).await?,
        accept_unknown: settings.accept_unknown_callers,
        caller: Mutex::new(None),
    });
    let options = ServerAssociationOptions::new()
        .ae_access_control(Gate(devices.clone()))
        .ae_title(settings.ae_title.clone())
        .promiscuous(true)
        .max_pdu_length(settings.max_pdu_length)
        .read_timeout(Duration::from_secs(settings.idle_timeout_secs));
    let caller =
        || devices.caller.lock().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or_default();
    let mut assoc = match options.establish_async(socket).await {
        Ok(a) => a,
        Err(e) => {
            let ae = caller();
            let who = Caller { ae: &ae, site: None, peer };
            // Refused either way; a failed record is logged by `record`.
            let _ = record(
                state,
                &who,
                "dimse.associate",
                None,
                Outcome::Failure,
                "association refused".into(),
            )
            .await;
            tracing::info!(calling_ae = %ae, error = %e, "DIMSE association refused");
            return Ok(());
        }
    };
    let ae = caller();
    // An unknown caller admitted by configuration stores for no site: refused per instance.
    let site = devices.sites.get(&ae).cloned();
    let who = Caller { ae: &ae, site: site.as_ref(), peer };
    // No record, no association: a caller whose acceptance cannot be audited is aborted.
    if record(state, &who, "dimse.associate", None, Outcome::Success, "association accepted".into())
        .await
        .is_err()
    {
        let _ = assoc.abort().await;
        return Ok(());
    }
    let mut studies: HashMap<String, usize> = HashMap::new();
    let max_bytes = (state.settings.dicomweb.max_instance_mib * 1024 * 1024) as usize;
    let mut permit = None;

    loop {
        let pdu = match receive(&mut assoc, &ack).await {
            Ok(p) => p,
            Err(e) => {
                tracing::info!(error = %e, "DIMSE receive ended");
                break;
            }
        };
        match pdu {
            Pdu::PData { data } => {
                let mut command = vec![];
                let mut pc_id = 0u8;
                let mut complete = false;
                for v in data {
                    pc_id = v.presentation_context_id;
                    if v.value_type == PDataValueType::Command {
                        command.extend_from_slice(&v.data);
                        complete |= v.is_last;
                    }
                }
                while !complete {
                    match receive(&mut assoc, &ack).await? {
                        Pdu::PData { data } => {
                            for v in data {
                                if v.value_type == PDataValueType::Command {
                                    command.extend_from_slice(&v.data);
                                    complete |= v.is_last;
                                }
                            }
                        }
                        _ => anyhow::bail!("unexpected PDU inside a command"),
                    }
                }
                let cmd = InMemDicomObject::read_dataset_with_ts(
                    &command[..],
                    &IMPLICIT_VR_LITTLE_ENDIAN.erased(),
                )?;
                let field = cmd.element(tags::COMMAND_FIELD)?.to_int::<u16>()?;
                let message_id = cmd.element(tags::MESSAGE_ID)?.to_int::<u16>()?;
                let has_data =
                    cmd.element(tags::COMMAND_DATA_SET_TYPE)?.to_int::<u16>()? != NO_DATA_SET;
                let class = text(&cmd, tags::AFFECTED_SOP_CLASS_UID);
                let mut data_set = vec![];
                if has_data {
                    let mut last = false;
                    while !last {
                        match receive(&mut assoc, &ack).await? {
                            Pdu::PData { data } => {
                                for v in data {
                                    if v.value_type == PDataValueType::Data {
                                        data_set.extend_from_slice(&v.data);
                                        last |= v.is_last;
                                    }
                                }
                                if data_set.len() > max_bytes {
                                    anyhow::bail!("data set larger than dicomweb.max_instance_mib");
                                }
                            }
                            _ => anyhow::bail!("unexpected PDU inside a data set"),
                        }
                    }
                }
                match field {
                    C_ECHO_RQ => {
                        let rsp = response(C_ECHO_RSP, message_id, &class, None, 0x0000)?;
                        send_command(&mut assoc, pc_id, rsp).await?;
                    }
                    C_STORE_RQ => {
                        let instance = text(&cmd, tags::AFFECTED_SOP_INSTANCE_UID);
                        let ts = assoc
                            .presentation_contexts()
                            .iter()
                            .find(|pc| pc.id == pc_id)
                            .map(|pc| pc.transfer_syntax.trim_end_matches('\0').to_string())
                            .unwrap_or_default();
                        let status = match &site {
                            None => NOT_AUTHORISED,
                            Some(site) => 'store: {
                                // No record, no operation: the decision to let this device
                                // store is audited before anything is stored.
                                if permit.is_none() {
                                    match crate::auth::console::device_permit::<ImagingStore>(
                                        &state.db,
                                        &ae,
                                        site,
                                        peer.ip(),
                                        Target::site(site, "study", None),
                                        "C-STORE",
                                    )
                                    .await
                                    {
                                        Ok(p) => permit = Some(p),
                                        Err(e) => {
                                            tracing::error!(error = %e, "audit write failed; C-STORE refused");
                                            break 'store OUT_OF_RESOURCES;
                                        }
                                    }
                                }
                                let file = part10(&class, &instance, &ts, &data_set)?;
                                let p = permit.as_ref().expect("set above");
                                let replace_as = state
                                    .settings
                                    .dicomweb
                                    .replaces()
                                    .then(|| format!("device:{ae}"));
                                match store::ingest(
                                    &state.db,
                                    &state.objects,
                                    p,
                                    Bytes::from(file),
                                    None,
                                    replace_as.as_deref(),
                                    now_ms(),
                                )
                                .await
                                {
                                    Ok((inst, _)) => {
                                        *studies.entry(inst.study_uid).or_default() += 1;
                                        0x0000
                                    }
                                    Err((_, r)) => {
                                        tracing::info!(status = %format_args!("0x{:04X}", r.status), reason = %r.reason, "C-STORE refused");
                                        r.status
                                    }
                                }
                            }
                        };
                        let rsp =
                            response(C_STORE_RSP, message_id, &class, Some(&instance), status)?;
                        send_command(&mut assoc, pc_id, rsp).await?;
                    }
                    other => {
                        tracing::info!(command = other, "unsupported DIMSE command");
                        // 0x0211: unrecognised operation.
                        let rsp = response(other | 0x8000, message_id, &class, None, 0x0211)?;
                        send_command(&mut assoc, pc_id, rsp).await?;
                    }
                }
            }
            Pdu::ReleaseRQ => {
                let _ = assoc.send(&Pdu::ReleaseRP).await;
                break;
            }
            Pdu::AbortRQ { .. } => break,
            _ => {}
        }
    }
    for (study, n) in studies {
        let detail = format!("{n} instance(s) stored by C-STORE");
        // What was stored, per study (as STOW-RS records it after storing); the decision that
        // allowed it was recorded before anything was stored. A failure is logged by `record`.
        let _ = record(state, &who, "imaging.stored", Some(study), Outcome::Success, detail).await;
    }
    Ok(())
}

fn text(obj: &InMemDicomObject, tag: dicom_core::Tag) -> String {
    obj.element_opt(tag)
        .ok()
        .flatten()
        .and_then(|e| e.to_str().ok().map(|s| s.trim_end_matches(['\0', ' ']).to_string()))
        .unwrap_or_default()
}

/// A response command set (implicit VR little endian, with its group length).
fn response(
    field: u16,
    message_id: u16,
    class: &str,
    instance: Option<&str>,
    status: u16,
) -> anyhow::Result<Vec<u8>> {
    let mut obj = InMemDicomObject::from_element_iter([
        DataElement::new(tags::AFFECTED_SOP_CLASS_UID, VR::UI, PrimitiveValue::from(even(class))),
        DataElement::new(tags::COMMAND_FIELD, VR::US, dicom_value!(U16, [field])),
        DataElement::new(
            tags::MESSAGE_ID_BEING_RESPONDED_TO,
            VR::US,
            dicom_value!(U16, [message_id]),
        ),
        DataElement::new(tags::COMMAND_DATA_SET_TYPE, VR::US, dicom_value!(U16, [NO_DATA_SET])),
        DataElement::new(tags::STATUS, VR::US, dicom_value!(U16, [status])),
    ]);
    if let Some(i) = instance {
        obj.put(DataElement::new(
            tags::AFFECTED_SOP_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from(even(i)),
        ));
    }
    let ts = IMPLICIT_VR_LITTLE_ENDIAN.erased();
    let mut body = vec![];
    obj.write_dataset_with_ts(&mut body, &ts)?;
    obj.put(DataElement::new(
        tags::COMMAND_GROUP_LENGTH,
        VR::UL,
        dicom_value!(U32, [body.len() as u32]),
    ));
    let mut out = vec![];
    obj.write_dataset_with_ts(&mut out, &ts)?;
    Ok(out)
}

/// UIDs are padded to even length with a NUL.
fn even(uid: &str) -> String {
    if uid.len() % 2 == 1 { format!("{uid}\0") } else { uid.to_string() }
}

async fn send_command(
    assoc: &mut AsyncServerAssociation<TcpStream>,
    pc_id: u8,
    data: Vec<u8>,
) -> anyhow::Result<()> {
    assoc
        .send(&Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: pc_id,
                value_type: PDataValueType::Command,
                is_last: true,
                data,
            }],
        })
        .await?;
    Ok(())
}

/// The received data set as a Part 10 file: preamble, `DICM`, file meta group, then the data
/// set bytes exactly as they arrived.
fn part10(class: &str, instance: &str, ts: &str, data_set: &[u8]) -> anyhow::Result<Vec<u8>> {
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(class)
        .media_storage_sop_instance_uid(instance)
        .transfer_syntax(ts)
        .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
        .implementation_version_name(IMPLEMENTATION_VERSION)
        .build()?;
    let mut out = Vec::with_capacity(data_set.len() + 512);
    out.extend_from_slice(&[0u8; 128]);
    out.extend_from_slice(b"DICM");
    meta.write(&mut out)?;
    out.extend_from_slice(data_set);
    Ok(out)
}
