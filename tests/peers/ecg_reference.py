#!/usr/bin/env python3
"""Independent reference decoder for resting-ECG files, for testing Ferry's Rust parsers.

Usage:
    python3 tests/peers/ecg_reference.py FILE [--group rhythm|median]

Detects the format from the file's content and prints one JSON object:

    {"format": "dicom" | "muse-xml" | "hl7-aecg" | "scp-ecg",
     "group": "rhythm" | "median",
     "sampling_hz": float,
     "leads": [{"name": "I", "uv": [int, ...]}, ...],
     "device": {"heart_rate_bpm", "rr_ms", "pr_ms", "qrs_ms", "qt_ms",
                "qtc_bazett_ms", "qtc_fridericia_ms", "qtc_ms",
                "p_axis_deg", "qrs_axis_deg", "t_axis_deg", ...},
     "statements": [str, ...]}

Conventions (a Rust implementation compared against this must follow them or allow +-1 uV):
  * "uv" is the physical value in microvolts rounded half AWAY from zero (like Rust's f64::round),
    computed in float64 from the raw sample times the file's scale.
  * device keys are absent when the file does not carry the value. "qtc_ms" is a QTc whose
    correction formula the file does not name; qtc_bazett_ms / qtc_fridericia_ms only when it does
    (MUSE: QTCorrected is taken as Bazett, QTcFrederica as Fridericia). Extra keys that may appear:
    "atrial_rate_bpm", "p_ms" (P duration), "pp_ms". An interval or rate of 0 is treated as "not
    measured" and dropped (pydicom's sample carries PP Interval = 0); a 0 degree axis is kept.
  * a lead that the decoder derived (MUSE 8-lead files: III, aVR, aVL, aVF) has "derived": true.
  * diagnostics and cross-checks between decoders go to stderr, never to stdout.

Decoders (independent of Ferry's code):
  * DICOM: pydicom (Dataset.waveform_array applies sensitivity x correction + baseline).
  * GE MUSE XML, HL7 aECG: xml.etree from the standard library, written here.
  * SCP-ECG: Debian biosig-tools `save2gdf -f=ASCII` for the rhythm data (section 6), PixelMed
    (Debian libpixelmed-java, com.pixelmed.scpecg) for the reference beat (section 5), with a
    Python section-7 parser written here for the measurements. PixelMed's rhythm data and a small
    default-Huffman decoder written here are used as cross-checks (stderr).
"""
import argparse
import base64
import glob
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
import zlib


def warn(msg):
    print("ecg_reference: " + msg, file=sys.stderr)


def round_uv(x):
    """Round half away from zero, like Rust's f64::round."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


# SCP-ECG lead identifiers (EN 1064 section 3 table); the MDC ECG lead codes (2:N, CID 3001)
# use the same numbers for these leads.
LEAD_BY_NUMBER = {
    1: "I", 2: "II", 3: "V1", 4: "V2", 5: "V3", 6: "V4", 7: "V5", 8: "V6",
    9: "V7", 10: "V2R", 11: "V3R", 12: "V4R", 13: "V5R", 14: "V6R", 15: "V7R",
    16: "X", 17: "Y", 18: "Z",
    61: "III", 62: "aVR", 63: "aVL", 64: "aVF", 66: "V8", 67: "V9",
}
CANON = {n.upper(): n for n in LEAD_BY_NUMBER.values()}
STANDARD_ORDER = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


def canon_lead(name):
    return CANON.get(name.strip().upper(), name.strip())


def unit_to_uv(unit):
    u = (unit or "").strip()
    table = {"uV": 1.0, "UV": 1.0, "MICROVOLTS": 1.0, "microvolt": 1.0, "mV": 1000.0,
             "MV": 1000.0, "MILLIVOLTS": 1000.0, "millivolt": 1000.0, "V": 1e6, "nV": 1e-3}
    if u in table:
        return table[u]
    raise ValueError("unknown amplitude unit %r" % unit)


# --------------------------------------------------------------------------------------------
# format detection

def detect(path):
    with open(path, "rb") as f:
        head = f.read(4096)
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"<") or head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        for _, elem in ET.iterparse(path, events=("start",)):
            tag = elem.tag.split("}")[-1]
            if tag == "RestingECG":
                return "muse-xml"
            if tag == "AnnotatedECG":
                return "hl7-aecg"
            return "xml-unknown:" + tag
    # SCP-ECG: 6-byte record header, then section 0 whose 16-byte header carries "SCPECG".
    if len(head) >= 22 and head[16:22] == b"SCPECG" and struct.unpack_from("<H", head, 8)[0] == 0:
        return "scp-ecg"
    # DICOM without preamble (rare): let pydicom try.
    try:
        import pydicom
        ds = pydicom.dcmread(path, force=True, stop_before_pixels=False)
        if "WaveformSequence" in ds:
            return "dicom"
    except Exception:
        pass
    return "unknown"


# --------------------------------------------------------------------------------------------
# DICOM

# (coding scheme designator, code value) -> device key
DICOM_MEASUREMENT_CODES = {
    # SCPECG scheme, as written by Mortara (pydicom's waveform_ecg.dcm)
    ("SCPECG", "5.10.2.1-3"): "rr_ms",
    ("SCPECG", "5.10.2.1-5"): "pp_ms",
    ("SCPECG", "5.13.5-7"): "pr_ms",
    ("SCPECG", "5.13.5-9"): "qrs_ms",
    ("SCPECG", "5.13.5-11"): "qt_ms",
    ("SCPECG", "5.10.2.5-5"): "qtc_ms",
    ("SCPECG", "5.10.3-11"): "p_axis_deg",
    ("SCPECG", "5.10.3-13"): "qrs_axis_deg",
    ("SCPECG", "5.10.3-15"): "t_axis_deg",
    # MDC (TID 3713 / CID 3229), as written by ecg2dcm and newer carts
    ("MDC", "2:16016"): "heart_rate_bpm",
    ("MDC", "2:16020"): "atrial_rate_bpm",
    ("MDC", "2:15872"): "pr_ms",
    ("MDC", "2:16156"): "qrs_ms",
    ("MDC", "2:16160"): "qt_ms",
    ("MDC", "2:15876"): "qtc_ms",
    ("MDC", "2:16128"): "p_axis_deg",
    ("MDC", "2:16132"): "qrs_axis_deg",
    ("MDC", "2:16136"): "t_axis_deg",
    # LOINC, as written by some GE exports
    ("LN", "8867-4"): "heart_rate_bpm",
    ("LN", "8625-6"): "pr_ms",
    ("LN", "8633-0"): "qrs_ms",
    ("LN", "8634-8"): "qt_ms",
    ("LN", "8636-3"): "qtc_ms",
    ("LN", "8626-4"): "p_axis_deg",
    ("LN", "8632-2"): "qrs_axis_deg",
    ("LN", "8638-9"): "t_axis_deg",
}


def dicom_lead_name(ch):
    seq = ch.get("ChannelSourceSequence")
    if not seq:
        return "?"
    item = seq[0]
    scheme = str(item.get("CodingSchemeDesignator", ""))
    value = str(item.get("CodeValue", ""))
    num = None
    if scheme == "MDC" and value.startswith("2:"):
        num = int(value[2:])
    elif scheme == "MDC" and value.isdigit() and int(value) >= 131072:
        num = int(value) - 131072  # numeric MDC code, partition 2 << 16
    elif scheme == "SCPECG" and value.startswith("5.6.3-9-"):
        num = int(value.rsplit("-", 1)[1])
    if num is not None and num in LEAD_BY_NUMBER:
        return LEAD_BY_NUMBER[num]
    warn("unmapped lead code %s %s (%r)" % (scheme, value, item.get("CodeMeaning")))
    return "?%s:%s" % (scheme, value)


def decode_dicom(path, group):
    import pydicom
    ds = pydicom.dcmread(path)
    groups = list(ds.WaveformSequence)
    idx = None
    for i, w in enumerate(groups):
        label = str(w.get("MultiplexGroupLabel", "")).upper()
        orig = str(w.get("WaveformOriginality", "")).upper()
        is_median = "MEDIAN" in label or "REPRESENTATIVE" in label or (orig == "DERIVED" and "RHYTHM" not in label)
        if (group == "median") == is_median:
            idx = i
            break
    if idx is None:
        raise SystemExit("no %s multiplex group in %s" % (group, path))
    w = groups[idx]
    arr = ds.waveform_array(idx)  # (samples, channels), sensitivity*correction+baseline applied
    leads = []
    for j, ch in enumerate(w.ChannelDefinitionSequence):
        units = ch.get("ChannelSensitivityUnitsSequence")
        unit = str(units[0].CodeValue) if units else "uV"
        if not units:
            warn("channel %d has no sensitivity units; assuming uV" % j)
        factor = unit_to_uv(unit)
        bits_stored = ch.get("WaveformBitsStored")
        if bits_stored is not None and int(bits_stored) != int(w.WaveformBitsAllocated):
            warn("channel %d: bits stored %s < bits allocated %s" % (j, bits_stored, w.WaveformBitsAllocated))
        if float(ch.get("ChannelBaseline", 0) or 0) != 0:
            warn("channel %d: non-zero baseline %s" % (j, ch.ChannelBaseline))
        leads.append({"name": dicom_lead_name(ch), "uv": [round_uv(v * factor) for v in arr[:, j].tolist()]})
    device, statements = {}, []
    for a in ds.get("WaveformAnnotationSequence", []):
        if "UnformattedTextValue" in a:
            statements.append(str(a.UnformattedTextValue))
            continue
        cn = a.get("ConceptNameCodeSequence")
        if not cn:
            continue
        key = DICOM_MEASUREMENT_CODES.get((str(cn[0].get("CodingSchemeDesignator", "")), str(cn[0].get("CodeValue", ""))))
        if "ConceptCodeSequence" in a and key is None:
            cc = a.ConceptCodeSequence[0]
            statements.append(str(cc.get("CodeMeaning", cc.get("CodeValue", ""))))
            continue
        if key and "NumericValue" in a:
            v = float(a.NumericValue)
            units = a.get("MeasurementUnitsCodeSequence")
            if units and str(units[0].CodeValue) == "s":
                v *= 1000.0
            device.setdefault(key, int(v) if v == int(v) else v)
    return {"format": "dicom", "group": group, "sampling_hz": float(w.SamplingFrequency),
            "leads": leads, "device": device, "statements": statements}


# --------------------------------------------------------------------------------------------
# GE MUSE XML

MUSE_MEASUREMENTS = {
    "VentricularRate": "heart_rate_bpm",
    "AtrialRate": "atrial_rate_bpm",
    "PRInterval": "pr_ms",
    "QRSDuration": "qrs_ms",
    "QTInterval": "qt_ms",
    "QTCorrected": "qtc_bazett_ms",
    "QTcFrederica": "qtc_fridericia_ms",
    "PAxis": "p_axis_deg",
    "RAxis": "qrs_axis_deg",
    "TAxis": "t_axis_deg",
}


def decode_muse(path, group):
    root = ET.parse(path).getroot()
    want = "Median" if group == "median" else "Rhythm"
    wf = None
    for w in root.findall("Waveform"):
        if (w.findtext("WaveformType") or "").strip().lower() == want.lower():
            wf = w
            break
    if wf is None:
        raise SystemExit("no %s Waveform in %s" % (want, path))
    base = float(wf.findtext("SampleBase"))
    exp = int(wf.findtext("SampleExponent") or 0)
    fs = base * (10 ** exp)
    phys = {}
    order = []
    for ld in wf.findall("LeadData"):
        name = canon_lead(ld.findtext("LeadID"))
        raw = base64.b64decode("".join((ld.findtext("WaveFormData") or "").split()))
        crc = ld.findtext("LeadDataCRC32")
        if crc is not None and int(crc) != zlib.crc32(raw):
            warn("lead %s: LeadDataCRC32 %s != crc32 of decoded bytes %d" % (name, crc, zlib.crc32(raw)))
        size = int(ld.findtext("LeadSampleSize") or 2)
        if size != 2:
            raise SystemExit("LeadSampleSize %d not supported" % size)
        n = len(raw) // 2
        count = int(ld.findtext("LeadSampleCountTotal") or n)
        if count != n:
            warn("lead %s: LeadSampleCountTotal %d but %d samples decoded" % (name, count, n))
        samples = struct.unpack("<%dh" % n, raw[: 2 * n])
        scale = float(ld.findtext("LeadAmplitudeUnitsPerBit")) * unit_to_uv(ld.findtext("LeadAmplitudeUnits") or "MICROVOLTS")
        phys[name] = [s * scale for s in samples]
        order.append(name)
    derived = []
    if "I" in phys and "II" in phys:
        i_, ii = phys["I"], phys["II"]
        rules = {
            "III": lambda a, b: b - a,
            "aVR": lambda a, b: -(a + b) / 2.0,
            "aVL": lambda a, b: a - b / 2.0,
            "aVF": lambda a, b: b - a / 2.0,
        }
        for name, f in rules.items():
            if name not in phys:
                phys[name] = [f(a, b) for a, b in zip(i_, ii)]
                derived.append(name)
    if derived:
        warn("MUSE %s: derived %s from I and II (III=II-I, aVR=-(I+II)/2, aVL=I-II/2, aVF=II-I/2)" % (want, ",".join(derived)))
    names = [n for n in STANDARD_ORDER if n in phys] + [n for n in order if n not in STANDARD_ORDER]
    leads = []
    for n in names:
        entry = {"name": n, "uv": [round_uv(v) for v in phys[n]]}
        if n in derived:
            entry["derived"] = True
        leads.append(entry)
    device = {}
    meas = root.find("RestingECGMeasurements")
    if meas is not None:
        for tag, key in MUSE_MEASUREMENTS.items():
            t = meas.findtext(tag)
            if t is not None and t.strip() != "":
                device[key] = int(t)
    statements = []
    diag = root.find("Diagnosis")
    if diag is not None:
        parts = []
        for st in diag.findall("DiagnosisStatement"):
            parts.append((st.findtext("StmtText") or "").strip())
            flags = [f.text for f in st.findall("StmtFlag")]
            if "ENDSLINE" in flags:
                statements.append(" ".join(p for p in parts if p))
                parts = []
        if parts:
            statements.append(" ".join(p for p in parts if p))
    return {"format": "muse-xml", "group": group, "sampling_hz": fs, "leads": leads,
            "device": device, "statements": statements}


# --------------------------------------------------------------------------------------------
# HL7 aECG

NS = {"h": "urn:hl7-org:v3"}
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
AECG_MEASUREMENTS = {
    "MDC_ECG_HEART_RATE": "heart_rate_bpm",
    "MDC_ECG_TIME_PD_RR": "rr_ms",
    "MDC_ECG_TIME_PD_PP": "pp_ms",
    "MDC_ECG_TIME_PD_P": "p_ms",
    "MDC_ECG_TIME_PD_PR": "pr_ms",
    "MDC_ECG_TIME_PD_QRS": "qrs_ms",
    "MDC_ECG_TIME_PD_QT": "qt_ms",
    "MDC_ECG_TIME_PD_QTc": "qtc_ms",
    "MDC_ECG_TIME_PD_QTcB": "qtc_bazett_ms",
    "MDC_ECG_TIME_PD_QTcF": "qtc_fridericia_ms",
    "MDC_ECG_ANGLE_P_FRONT": "p_axis_deg",
    "MDC_ECG_ANGLE_QRS_FRONT": "qrs_axis_deg",
    "MDC_ECG_ANGLE_T_FRONT": "t_axis_deg",
}
TIME_UNITS_S = {"s": 1.0, "ms": 1e-3, "us": 1e-6}


def aecg_sequence_set(series_like):
    ss = series_like.find("h:component/h:sequenceSet", NS)
    if ss is None:
        raise SystemExit("no sequenceSet")
    if len(series_like.findall("h:component/h:sequenceSet", NS)) > 1:
        warn("several sequenceSets; only the first is decoded")
    return ss


def aecg_annotations(aset, device, statements, in_beat=False):
    """Walk one annotationSet: global numerics (outside a lead-specific ROI), rhythm and
    interpretation statements."""
    def walk(ann, depth):
        code_el = ann.find("h:code", NS)
        code = code_el.get("code") if code_el is not None else None
        val = ann.find("h:value", NS)
        lead_roi = any((c.get("code") or "").startswith("MDC_ECG_LEAD_")
                       for c in ann.findall("h:support/h:supportingROI/h:component/h:boundary/h:code", NS))
        if code in AECG_MEASUREMENTS and val is not None and not lead_roi and val.get("value") is not None:
            v = float(val.get("value"))
            unit = val.get("unit") or ""
            if unit == "s":
                v *= 1000.0
            key = AECG_MEASUREMENTS[code]
            device.setdefault(key, int(v) if v == int(v) else v)
        if code in ("MDC_ECG_RHY",) and val is not None:
            statements.append(val.get("displayName") or val.get("code"))
        if code and code.startswith("MDC_ECG_INTERPRETATION") and val is not None:
            text = "".join(val.itertext()).strip() or val.get("displayName") or val.get("code")
            if text:
                statements.append(text)
        for sub in ann.findall("h:component/h:annotation", NS):
            walk(sub, depth + 1)
    for ann in aset.findall("h:component/h:annotation", NS):
        walk(ann, 0)


def decode_aecg(path, group):
    root = ET.parse(path).getroot()
    series = root.find(".//h:component/h:series", NS)
    if series is None:
        raise SystemExit("no series in %s" % path)
    target = series
    if group == "median":
        target = None
        for ds_ in series.findall("h:derivedSeries", NS) + series.findall("h:derivation/h:derivedSeries", NS):
            c = ds_.find("h:code", NS)
            if c is not None and c.get("code") == "REPRESENTATIVE_BEAT":
                target = ds_
                break
        if target is None:
            raise SystemExit("no REPRESENTATIVE_BEAT derivedSeries in %s" % path)
    ss = aecg_sequence_set(target)
    fs = None
    leads = []
    for seq in ss.findall("h:component/h:sequence", NS):
        code = seq.find("h:code", NS).get("code")
        val = seq.find("h:value", NS)
        if code in ("TIME_ABSOLUTE", "TIME_RELATIVE"):
            inc = val.find("h:increment", NS)
            if inc is not None:
                fs = 1.0 / (float(inc.get("value")) * TIME_UNITS_S[inc.get("unit") or "s"])
            continue
        if not code.startswith("MDC_ECG_LEAD_"):
            warn("skipping sequence %s" % code)
            continue
        origin = val.find("h:origin", NS)
        scale = val.find("h:scale", NS)
        o = float(origin.get("value")) * unit_to_uv(origin.get("unit")) if origin is not None else 0.0
        s = float(scale.get("value")) * unit_to_uv(scale.get("unit"))
        digits = val.find("h:digits", NS).text.split()
        leads.append({"name": canon_lead(code[len("MDC_ECG_LEAD_"):]),
                      "uv": [round_uv(o + s * int(d)) for d in digits]})
    device, statements = {}, []
    # Prefer the global annotations of the representative beat; then the series' own sets.
    sets = []
    for ds_ in series.findall("h:derivedSeries", NS) + series.findall("h:derivation/h:derivedSeries", NS):
        sets += ds_.findall("h:subjectOf/h:annotationSet", NS)
    sets += series.findall("h:subjectOf/h:annotationSet", NS)
    for aset in sets:
        aecg_annotations(aset, device, statements)
    seen = set()
    statements = [x for x in statements if not (x in seen or seen.add(x))]
    return {"format": "hl7-aecg", "group": group, "sampling_hz": fs, "leads": leads,
            "device": device, "statements": statements}


# --------------------------------------------------------------------------------------------
# SCP-ECG

PIXELMED_JAR = "/usr/share/java/pixelmed.jar"
PIXELMED_DUMPER = r"""
import com.pixelmed.scpecg.*;
import com.pixelmed.dicom.BinaryInputStream;
import java.io.*;
public class ScpDump {
  static StringBuilder o = new StringBuilder();
  static void ia(String k, int[] v) { o.append('"').append(k).append("\":["); if (v != null) for (int i = 0; i < v.length; i++) { if (i > 0) o.append(','); o.append(v[i]); } o.append("],"); }
  static void sa(String k, short[][] v) { o.append('"').append(k).append("\":["); if (v != null) for (int j = 0; j < v.length; j++) { if (j > 0) o.append(','); o.append('['); for (int i = 0; i < v[j].length; i++) { if (i > 0) o.append(','); o.append(v[j][i]); } o.append(']'); } o.append("],"); }
  static void n(String k, long v) { o.append('"').append(k).append("\":").append(v).append(','); }
  public static void main(String[] a) throws Exception {
    System.setErr(new PrintStream(new ByteArrayOutputStream()));
    BinaryInputStream in = new BinaryInputStream(new BufferedInputStream(new FileInputStream(a[0])), false);
    SCPECG s = new SCPECG(in, false);
    o.append('{');
    ia("lead_numbers", s.getLeadNumbers());
    Section5Or6 s5 = s.getSection5();
    if (s5 != null) { n("s5_avm_nv", s5.getAmplitudeValueMultiplier()); n("s5_interval_us", s5.getSampleTimeInterval()); }
    Section5Or6 s6 = s.getSection6();
    if (s6 != null) { n("s6_avm_nv", s6.getAmplitudeValueMultiplier()); n("s6_interval_us", s6.getSampleTimeInterval()); }
    sa("reference_beat", s.getDecompressedReferenceBeatData());
    sa("rhythm", s.getDecompressedRhythmData());
    o.setLength(o.length() - 1);
    o.append('}');
    System.out.println(o);
  }
}
"""


def scp_sections(data):
    """Return {id: (offset_of_section_header, length)} from section 0, checking CRCs."""
    import binascii
    crc, size = struct.unpack_from("<HI", data, 0)
    if size != len(data):
        warn("SCP record size %d != file size %d" % (size, len(data)))
    if binascii.crc_hqx(data[2:size], 0xFFFF) != crc:
        warn("SCP record CRC mismatch")
    s0 = 6
    _, sid, slen, _, _ = struct.unpack_from("<HHIBB", data, s0)
    sections = {}
    p = s0 + 16
    while p + 10 <= s0 + slen:
        pid, plen, pidx = struct.unpack_from("<HII", data, p)
        p += 10
        if plen > 0 and pidx > 0:
            off = pidx - 1
            scrc, = struct.unpack_from("<H", data, off)
            if binascii.crc_hqx(data[off + 2: off + plen], 0xFFFF) != scrc:
                warn("SCP section %d CRC mismatch" % pid)
            sections[pid] = (off, plen)
    return sections


def scp_features(data):
    """Describe the encoding features of an SCP-ECG record (sections 2-6), parsed here."""
    secs = scp_sections(data)
    f = {"sections": sorted(secs)}
    if 2 in secs:
        off, _ = secs[2]
        f["s2_huffman_tables"] = struct.unpack_from("<H", data, off + 16)[0]  # 19999 = default table
    if 3 in secs:
        off, _ = secs[3]
        nleads, flags = struct.unpack_from("<BB", data, off + 16)
        f["s3_leads"] = nleads
        f["s3_reference_beat_subtraction"] = bool(flags & 1)
        f["s3_all_simultaneous"] = bool(flags & 4)
        f["s3_simultaneous_count"] = flags >> 3
        f["s3_lead_ids"] = [data[off + 18 + 9 * i + 8] for i in range(nleads)]
    if 4 in secs:
        off, _ = secs[4]
        f["s4_refbeat_ms"], f["s4_fiducial_sample"], f["s4_qrs_count"] = struct.unpack_from("<HHH", data, off + 16)
    for sid in (5, 6):
        if sid in secs:
            off, _ = secs[sid]
            avm, interval, diff, b = struct.unpack_from("<HHBB", data, off + 16)
            f["s%d_avm_nv" % sid] = avm
            f["s%d_interval_us" % sid] = interval
            f["s%d_difference" % sid] = diff  # 0 none, 1 first, 2 second difference
            f["s%d_%s" % (sid, "bimodal" if sid == 6 else "reserved")] = b
    return f, secs


def scp_section7(data, secs):
    """Global measurements from section 7 (parsed here). Fiducials are ms from the start of the
    reference beat; values 29999 (not computed), 29998 (rejected), 19999 (absent), and axis 999
    (undefined) are dropped."""
    if 7 not in secs:
        return {}
    off, slen = secs[7]
    p = off + 16
    nblocks, nspikes, rr, pp = struct.unpack_from("<BBHH", data, p)
    p += 6
    bad = {29999, 29998, 19999}
    dev = {}
    if rr not in bad and rr != 0:
        dev["rr_ms"] = rr
    if pp not in bad and pp != 0:
        dev["pp_ms"] = pp
    if nblocks >= 1:
        pon, poff, qon, qoff, toff = struct.unpack_from("<5H", data, p)
        pax, qax, tax = struct.unpack_from("<3h", data, p + 10)
        ok = lambda *v: all(x not in bad for x in v)
        if ok(pon, qon):
            dev["pr_ms"] = qon - pon
        if ok(pon, poff):
            dev["p_ms"] = poff - pon
        if ok(qon, qoff):
            dev["qrs_ms"] = qoff - qon
        if ok(qon, toff):
            dev["qt_ms"] = toff - qon
        for k, v in (("p_axis_deg", pax), ("qrs_axis_deg", qax), ("t_axis_deg", tax)):
            if v != 999 and v not in bad and (v & 0xFFFF) not in bad:
                dev[k] = v
    p += 16 * nblocks
    p += 4 * nspikes + 6 * nspikes
    end = off + slen
    if p + 2 <= end:
        nqrs, = struct.unpack_from("<H", data, p)
        p += 2 + nqrs
        if p + 7 <= end:
            vrate, arate, qtc, formula = struct.unpack_from("<HHHB", data, p)
            if vrate not in bad and vrate != 0:
                dev["heart_rate_bpm"] = vrate
            if arate not in bad and arate != 0:
                dev["atrial_rate_bpm"] = arate
            if qtc not in bad and qtc != 0:
                dev[{1: "qtc_bazett_ms"}.get(formula, "qtc_ms")] = qtc
    return dev


def scp_statements(data, secs):
    out = []
    if 8 in secs:
        off, slen = secs[8]
        p = off + 16 + 1 + 7  # confirmed flag, date/time
        n = data[p]
        p += 1
        for _ in range(n):
            seq, ln = struct.unpack_from("<BH", data, p)
            p += 3
            out.append(data[p:p + ln].split(b"\0")[0].decode("latin-1"))
            p += ln
    return out


def default_huffman_decode(buf, count):
    """Decode with the SCP default Huffman table (written here; cross-check only)."""
    bits = "".join("{:08b}".format(x) for x in buf)
    i, out = 0, []
    while len(out) < count and i < len(bits):
        k = 0
        while k < 10 and i < len(bits) and bits[i] == "1":
            k += 1
            i += 1
        if k == 0:
            out.append(0)
            i += 1
        elif k < 9:
            i += 1
            out.append(k if bits[i] == "0" else -k)
            i += 1
        elif k == 9:
            i += 1
            v = int(bits[i:i + 8], 2)
            i += 8
            out.append(v - 256 if v >= 128 else v)
        else:
            v = int(bits[i:i + 16], 2)
            i += 16
            out.append(v - 65536 if v >= 32768 else v)
    return out


def undo_difference(d, mode):
    x = list(d[:mode])
    for k in range(mode, len(d)):
        if mode == 1:
            x.append(d[k] + x[-1])
        else:
            x.append(d[k] + 2 * x[-1] - x[-2])
    return x


def run_pixelmed(path):
    if not os.path.exists(PIXELMED_JAR) or not shutil.which("java"):
        return None
    with tempfile.TemporaryDirectory() as td:
        src = os.path.join(td, "ScpDump.java")
        with open(src, "w") as f:
            f.write(PIXELMED_DUMPER)
        r = subprocess.run(["java", "-Djava.awt.headless=true", "-cp", PIXELMED_JAR, src, path],
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0 or not r.stdout.strip():
            warn("PixelMed failed: %s" % r.stderr.strip()[:300])
            return None
        return json.loads(r.stdout)


def run_biosig(path):
    if not shutil.which("save2gdf"):
        raise SystemExit("save2gdf not found: apt-get install biosig-tools")
    with tempfile.TemporaryDirectory() as td:
        out = os.path.join(td, "out.asc")
        r = subprocess.run(["save2gdf", "-f=ASCII", path, out], capture_output=True, text=True, timeout=300)
        for line in (r.stdout + r.stderr).splitlines():
            if line.startswith("Warning"):
                warn("save2gdf: " + line)
        if r.returncode != 0:
            raise SystemExit("save2gdf failed: %s" % r.stderr)
        header = open(out, encoding="latin-1").read()
        chans, cur = [], None
        for line in header.splitlines():
            if "=" not in line:
                continue
            k, v = [x.strip() for x in line.split("=", 1)]
            v = v.split("#")[0].strip()
            if k == "Filename" and os.path.basename(v) != "out.asc":
                cur = {"file": os.path.basename(v)}
                chans.append(cur)
            elif cur is not None and k in ("Label", "PhysicalUnits", "SamplingRate", "NumberOfSamples"):
                cur[k] = v
        leads = []
        for c in chans:
            vals = [float(x) for x in open(os.path.join(td, c["file"])).read().split()]
            factor = unit_to_uv(c.get("PhysicalUnits", "uV"))
            leads.append({"name": canon_lead(c["Label"]), "uv": [round_uv(v * factor) for v in vals]})
        return float(chans[0]["SamplingRate"]), leads


def decode_scp(path, group):
    data = open(path, "rb").read()
    feats, secs = scp_features(data)
    warn("SCP features: " + json.dumps({k: v for k, v in feats.items()}))
    names = [LEAD_BY_NUMBER.get(n, "?%d" % n) for n in feats.get("s3_lead_ids", [])]
    pm = run_pixelmed(path)
    if group == "rhythm":
        fs, leads = run_biosig(path)
        # cross-check 1: PixelMed. It multiplies the decoded samples by the INTEGER AVM/1000
        # (2500 nV -> 2), so divide that back out before applying the true AVM.
        if pm is not None and pm.get("rhythm"):
            avm = pm["s6_avm_nv"]
            imul = max(avm // 1000, 1)
            worst = 0
            for lead, raw in zip(leads, pm["rhythm"]):
                uv = [round_uv(r / imul * avm / 1000.0) for r in raw]
                worst = max(worst, max(abs(a - b) for a, b in zip(uv, lead["uv"])))
            warn("cross-check PixelMed rhythm vs biosig: max |diff| = %d uV" % worst)
        # cross-check 2: own default-Huffman decoder, when the record uses only that.
        if (feats.get("s2_huffman_tables") == 19999 and not feats.get("s3_reference_beat_subtraction")
                and not feats.get("s6_bimodal") and 6 in secs):
            off, _ = secs[6]
            nl = feats["s3_leads"]
            lens = struct.unpack_from("<%dH" % nl, data, off + 22)
            p = off + 22 + 2 * nl
            worst = 0
            for li, ln in enumerate(lens):
                raw = undo_difference(default_huffman_decode(data[p:p + ln], len(leads[li]["uv"])), feats["s6_difference"])
                p += ln
                uv = [round_uv(r * feats["s6_avm_nv"] / 1000.0) for r in raw]
                worst = max(worst, max(abs(a - b) for a, b in zip(uv, leads[li]["uv"])))
            warn("cross-check own default-Huffman decode vs biosig: max |diff| = %d uV" % worst)
    else:
        if pm is None or not pm.get("reference_beat"):
            raise SystemExit("no reference beat (section 5) decoded")
        avm = pm["s5_avm_nv"]
        imul = max(avm // 1000, 1)
        fs = 1e6 / pm["s5_interval_us"]
        leads = [{"name": LEAD_BY_NUMBER.get(n, "?%d" % n), "uv": [round_uv(r / imul * avm / 1000.0) for r in raw]}
                 for n, raw in zip(pm["lead_numbers"], pm["reference_beat"])]
        if imul * 1000 != avm:
            warn("PixelMed reference beat rescaled: decoded values divided by %d, multiplied by %g" % (imul, avm / 1000.0))
    if names and [l["name"] for l in leads] != names:
        warn("lead names from decoder %s differ from section 3 %s" % ([l["name"] for l in leads], names))
    return {"format": "scp-ecg", "group": group, "sampling_hz": fs, "leads": leads,
            "device": scp_section7(data, secs), "statements": scp_statements(data, secs)}


# --------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("file")
    ap.add_argument("--group", choices=["rhythm", "median"], default="rhythm")
    args = ap.parse_args()
    fmt = detect(args.file)
    decoders = {"dicom": decode_dicom, "muse-xml": decode_muse, "hl7-aecg": decode_aecg, "scp-ecg": decode_scp}
    if fmt not in decoders:
        raise SystemExit("unrecognised format: %s" % fmt)
    out = decoders[fmt](args.file, args.group)
    for k in [k for k, v in out["device"].items() if v == 0 and not k.endswith("_deg")]:
        warn("device %s = 0 treated as not measured (dropped)" % k)
        del out["device"][k]
    json.dump(out, sys.stdout, ensure_ascii=False, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
