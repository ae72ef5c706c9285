"""Drives Ferry with the PyPI `dicomweb-client` (a peer the tests do not control): STOW-RS,
QIDO-RS at each level, WADO-RS instance, metadata, frames and rendered. Prints one JSON
document of what it saw; the Rust test (tests/it/dicomweb.rs) asserts on it.

    python3 dicomweb_client_session.py URL TOKEN
"""
import json
import sys

import pydicom
from pydicom.data import get_testdata_file
from dicomweb_client.api import DICOMwebClient

url, token = sys.argv[1], sys.argv[2]
client = DICOMwebClient(url=url + "/dicomweb", headers={"Authorization": "Bearer " + token})
ct = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
us = pydicom.dcmread(get_testdata_file("examples_ybr_color.dcm"))
out = {}

stored = client.store_instances([ct, us])
out["stored"] = sorted(i.ReferencedSOPInstanceUID for i in stored.ReferencedSOPSequence)
out["failed"] = len(stored.get("FailedSOPSequence", []))

studies = client.search_for_studies(search_filters={"PatientName": "*CT1"})
out["studies_ct1"] = [s["0020000D"]["Value"][0] for s in studies]
out["studies_all"] = len(client.search_for_studies(get_remaining=True))
study = ct.StudyInstanceUID
series = client.search_for_series(study)
out["series"] = [s["0020000E"]["Value"][0] for s in series]
instances = client.search_for_instances(study, ct.SeriesInstanceUID, fields=["SliceThickness"])
out["instances"] = [i["00080018"]["Value"][0] for i in instances]
out["instance_slice_thickness"] = instances[0].get("00180050", {}).get("Value", [None])[0]

got = client.retrieve_instance(study, ct.SeriesInstanceUID, ct.SOPInstanceUID)
out["retrieved_sop"] = got.SOPInstanceUID
out["retrieved_pixels_equal"] = got.PixelData == ct.PixelData
meta = client.retrieve_series_metadata(study, ct.SeriesInstanceUID)
out["metadata_rows"] = meta[0]["00280010"]["Value"][0]
frames = client.retrieve_instance_frames(study, ct.SeriesInstanceUID, ct.SOPInstanceUID, [1])
out["frame_equal"] = frames[0] == ct.PixelData
us_frames = client.retrieve_instance_frames(
    us.StudyInstanceUID, us.SeriesInstanceUID, us.SOPInstanceUID, [2],
    media_types=(("application/octet-stream", "*"),),
)
out["us_frame_is_jpeg"] = us_frames[0][:2] == b"\xff\xd8"
png = client.retrieve_instance_rendered(
    study, ct.SeriesInstanceUID, ct.SOPInstanceUID, media_types=("image/png",)
)
out["rendered_png"] = png[:8] == b"\x89PNG\r\n\x1a\n"
print(json.dumps(out))
