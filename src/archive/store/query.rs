//! QIDO matching: studies, series and instances of the studies a site may see.

use super::*;

/// QIDO study matching. Text values may hold `*` and `?` wildcards; `study_date` is a DICOM
/// date or range (`20240101-20241231`, `-20241231`, `20240101-`).
#[derive(Debug, Clone, Default)]
pub struct StudyQuery {
    pub patient_name: Option<String>,
    pub patient_id: Option<String>,
    pub accession_number: Option<String>,
    pub study_description: Option<String>,
    pub study_id: Option<String>,
    pub referring_physician: Option<String>,
    pub study_date: Option<String>,
    pub study_uids: Vec<String>,
    pub modalities: Vec<String>,
    pub limit: i64,
    pub offset: i64,
}

/// A study as QIDO reports it.
#[derive(Debug, Clone)]
pub struct StudyRow {
    pub study_uid: String,
    pub origin_site: String,
    pub patient_name: Option<String>,
    pub patient_id: Option<String>,
    pub patient_birth_date: Option<String>,
    pub patient_sex: Option<String>,
    pub study_date: Option<String>,
    pub study_time: Option<String>,
    pub accession_number: Option<String>,
    pub study_description: Option<String>,
    pub study_id: Option<String>,
    pub referring_physician: Option<String>,
    pub modalities: Vec<String>,
    pub series_count: i64,
    pub instance_count: i64,
}

/// The range `[from, to)` holding every lowered value that starts with the literal prefix of
/// a wildcard pattern. Only ASCII letters and digits are used (trailing `z` and `9` dropped),
/// so the bounds order the same way bytewise and under the usual database collations, where
/// punctuation may be ignored; None when no such prefix remains.
pub(super) fn prefix_range(pattern: &str) -> Option<(String, String)> {
    let literal: String = pattern
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let trimmed = literal.trim_end_matches(['z', '9']);
    let last = trimmed.chars().last()?;
    let next = (last as u8 + 1) as char;
    let to = format!("{}{next}", &trimmed[..trimmed.len() - 1]);
    Some((trimmed.to_string(), to))
}

pub(super) fn opt(row: &AnyRow, col: &str) -> Result<Option<String>, sqlx::Error> {
    row.try_get(col)
}

/// Studies visible to the permit's site that match `q`, newest study date first. Returns one
/// more row than `q.limit` when there are more (the caller reports truncation).
pub async fn search_studies(
    db: &Db,
    permit: &Permit<ImagingSearch>,
    q: &StudyQuery,
) -> Result<Vec<StudyRow>, sqlx::Error> {
    let mut w = Where::new();
    w.visible_study_filters(permit, q);
    let limit = w.arg((q.limit + 1).to_string());
    let offset = w.arg(q.offset.to_string());
    let sql = format!(
        "SELECT st.*, \
           (SELECT COUNT(*) FROM series x WHERE x.study_uid = st.study_uid) AS series_count, \
           (SELECT COUNT(*) FROM instances i WHERE i.study_uid = st.study_uid) AS instance_count \
         FROM studies st{} ORDER BY st.study_date DESC, st.study_uid LIMIT CAST({limit} AS BIGINT) OFFSET CAST({offset} AS BIGINT)",
        w.sql
    );
    let rows = w.bind(sqlx::query(&sql)).fetch_all(db.pool()).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let mut row = study_row(r)?;
        row.series_count = r.try_get("series_count")?;
        row.instance_count = r.try_get("instance_count")?;
        out.push(row);
    }
    // ModalitiesInStudy of the whole page in one query, not one per study.
    if !out.is_empty() {
        let mut m = Where::new();
        let uids: Vec<String> = out.iter().map(|r| r.study_uid.clone()).collect();
        m.in_list("study_uid", &uids);
        let sql = format!(
            "SELECT DISTINCT study_uid, modality FROM series{} ORDER BY study_uid, modality",
            m.sql
        );
        let pairs = m.bind(sqlx::query(&sql)).fetch_all(db.pool()).await?;
        let mut by_study: std::collections::HashMap<String, Vec<String>> = Default::default();
        for p in &pairs {
            if let Some(modality) = opt(p, "modality")? {
                by_study.entry(p.try_get("study_uid")?).or_default().push(modality);
            }
        }
        for row in &mut out {
            row.modalities = by_study.remove(&row.study_uid).unwrap_or_default();
        }
    }
    Ok(out)
}

/// The study columns a joined series or instance search selects (`STUDY_COLUMNS`).
pub(super) const STUDY_COLUMNS: &str = "st.origin_site, st.patient_name, st.patient_id, \
    st.patient_birth_date, st.patient_sex, st.study_date, st.study_time, st.accession_number, \
    st.study_description, st.study_id, st.referring_physician";

/// A study's attributes from a row holding the study columns (counts and modalities left
/// empty).
pub(super) fn study_row(r: &AnyRow) -> Result<StudyRow, sqlx::Error> {
    Ok(StudyRow {
        study_uid: r.try_get("study_uid")?,
        origin_site: r.try_get("origin_site")?,
        patient_name: opt(r, "patient_name")?,
        patient_id: opt(r, "patient_id")?,
        patient_birth_date: opt(r, "patient_birth_date")?,
        patient_sex: opt(r, "patient_sex")?,
        study_date: opt(r, "study_date")?,
        study_time: opt(r, "study_time")?,
        accession_number: opt(r, "accession_number")?,
        study_description: opt(r, "study_description")?,
        study_id: opt(r, "study_id")?,
        referring_physician: opt(r, "referring_physician")?,
        modalities: vec![],
        series_count: 0,
        instance_count: 0,
    })
}

/// Series and instance matching across every visible study (the un-nested QIDO forms):
/// study attributes as in [`StudyQuery`] plus series and instance keys.
#[derive(Debug, Clone, Default)]
pub struct LevelQuery {
    pub study: StudyQuery,
    pub series_uids: Vec<String>,
    pub modality: Option<String>,
    pub series_number: Option<i64>,
    pub sop_uids: Vec<String>,
    pub sop_class_uids: Vec<String>,
    pub instance_number: Option<i64>,
}

impl Where {
    /// Studies the permit's site may see, matching the study-level keys of `q`.
    fn visible_study_filters(&mut self, permit: &Permit<ImagingSearch>, q: &StudyQuery) {
        let site = permit.site().map(|s| s.to_string()).unwrap_or_default();
        let me = self.arg(site);
        self.push(&format!(
            "(st.origin_site = {me} OR EXISTS (SELECT 1 FROM study_shares sh WHERE sh.study_uid = st.study_uid AND sh.site_id = {me}))"
        ));
        self.text("st.patient_name", &q.patient_name);
        self.text("st.patient_id", &q.patient_id);
        self.text("st.accession_number", &q.accession_number);
        self.text("st.study_description", &q.study_description);
        self.text("st.study_id", &q.study_id);
        self.text("st.referring_physician", &q.referring_physician);
        self.date_range("st.study_date", &q.study_date);
        self.in_list("st.study_uid", &q.study_uids);
        if !q.modalities.is_empty() {
            let marks: Vec<String> = q.modalities.iter().map(|m| self.arg(m.clone())).collect();
            self.push(&format!(
                "EXISTS (SELECT 1 FROM series m WHERE m.study_uid = st.study_uid AND m.modality IN ({}))",
                marks.join(", ")
            ));
        }
    }

    fn series_filters(&mut self, q: &LevelQuery) {
        self.in_list("se.series_uid", &q.series_uids);
        if let Some(m) = q.modality.as_deref().filter(|m| !m.is_empty()) {
            let p = self.arg(m);
            self.push(&format!("se.modality = {p}"));
        }
        if let Some(n) = q.series_number {
            let p = self.arg(n.to_string());
            self.push(&format!("se.series_number = CAST({p} AS BIGINT)"));
        }
    }

    fn page(&mut self, q: &StudyQuery) -> String {
        let limit = self.arg((q.limit + 1).to_string());
        let offset = self.arg(q.offset.to_string());
        format!(" LIMIT CAST({limit} AS BIGINT) OFFSET CAST({offset} AS BIGINT)")
    }
}

/// Series of every visible study matching `q` (un-nested `/series`), with their study.
/// Returns one more row than the limit when there are more.
pub async fn search_all_series(
    db: &Db,
    permit: &Permit<ImagingSearch>,
    q: &LevelQuery,
) -> Result<Vec<(StudyRow, SeriesRow)>, sqlx::Error> {
    let mut w = Where::new();
    w.visible_study_filters(permit, &q.study);
    w.series_filters(q);
    let page = w.page(&q.study);
    let sql = format!(
        "SELECT se.*, {STUDY_COLUMNS}, \
           (SELECT COUNT(*) FROM instances i WHERE i.series_uid = se.series_uid) AS instance_count \
         FROM series se JOIN studies st ON st.study_uid = se.study_uid{} \
         ORDER BY st.study_date DESC, se.study_uid, se.series_number, se.series_uid{page}",
        w.sql
    );
    let rows = w.bind(sqlx::query(&sql)).fetch_all(db.pool()).await?;
    rows.iter().map(|r| Ok((study_row(r)?, series_row(r)?))).collect()
}

/// Instances of every visible study matching `q` (un-nested `/instances`, or
/// `/studies/{s}/instances` with the study in `q`), with their study.
pub async fn search_all_instances(
    db: &Db,
    permit: &Permit<ImagingSearch>,
    q: &LevelQuery,
) -> Result<Vec<(StudyRow, InstanceRow)>, sqlx::Error> {
    let mut w = Where::new();
    w.visible_study_filters(permit, &q.study);
    w.series_filters(q);
    w.in_list("i.sop_instance_uid", &q.sop_uids);
    w.in_list("i.sop_class_uid", &q.sop_class_uids);
    if let Some(n) = q.instance_number {
        let p = w.arg(n.to_string());
        w.push(&format!("i.instance_number = CAST({p} AS BIGINT)"));
    }
    let page = w.page(&q.study);
    let sql = format!(
        "SELECT {INSTANCE_COLUMNS}, {STUDY_COLUMNS} FROM instances i \
         JOIN series se ON se.series_uid = i.series_uid \
         JOIN studies st ON st.study_uid = i.study_uid{} \
         ORDER BY st.study_date DESC, i.study_uid, i.series_uid, i.instance_number, i.sop_instance_uid{page}",
        w.sql
    );
    let rows = w.bind(sqlx::query(&sql)).fetch_all(db.pool()).await?;
    rows.iter().map(|r| Ok((study_row(r)?, instance_row(r)?))).collect()
}

/// The stored metadata (DICOM JSON) of the first instance of a visible study, series or
/// instance, for `includefield` values the index does not hold.
pub async fn first_metadata(
    db: &Db,
    permit: &Permit<ImagingSearch>,
    study: &str,
    series: Option<&str>,
    sop: Option<&str>,
) -> Result<Option<String>, sqlx::Error> {
    let mut w = Where::new();
    w.visible_study_filters(permit, &StudyQuery::default());
    let s = w.arg(study);
    w.push(&format!("i.study_uid = {s}"));
    if let Some(x) = series {
        let p = w.arg(x);
        w.push(&format!("i.series_uid = {p}"));
    }
    if let Some(x) = sop {
        let p = w.arg(x);
        w.push(&format!("i.sop_instance_uid = {p}"));
    }
    let sql = format!(
        "SELECT i.metadata FROM instances i JOIN studies st ON st.study_uid = i.study_uid{} \
         ORDER BY i.series_uid, i.instance_number, i.sop_instance_uid LIMIT 1",
        w.sql
    );
    let row: Option<Option<String>> =
        w.bind_scalar(sqlx::query_scalar(&sql)).fetch_optional(db.pool()).await?;
    Ok(row.flatten())
}

/// A series as QIDO reports it.
#[derive(Debug, Clone)]
pub struct SeriesRow {
    pub study_uid: String,
    pub series_uid: String,
    pub modality: Option<String>,
    pub series_number: Option<i64>,
    pub series_description: Option<String>,
    pub series_date: Option<String>,
    pub instance_count: i64,
}

/// The series of the permit's study, optionally matching a modality or UID list.
pub async fn list_series(
    db: &Db,
    permit: &Permit<ImagingRead>,
    modality: Option<&str>,
    series_uids: &[String],
) -> Result<Vec<SeriesRow>, sqlx::Error> {
    let study = permit.target().id.clone().unwrap_or_default();
    let mut w = Where::new();
    let s = w.arg(study);
    w.push(&format!("se.study_uid = {s}"));
    if let Some(m) = modality.filter(|m| !m.is_empty()) {
        let p = w.arg(m);
        w.push(&format!("se.modality = {p}"));
    }
    w.in_list("se.series_uid", series_uids);
    let sql = format!(
        "SELECT se.*, (SELECT COUNT(*) FROM instances i WHERE i.series_uid = se.series_uid) AS instance_count \
         FROM series se{} ORDER BY se.series_number, se.series_uid",
        w.sql
    );
    let rows = w.bind(sqlx::query(&sql)).fetch_all(db.pool()).await?;
    rows.iter().map(series_row).collect()
}

pub(super) fn series_row(r: &AnyRow) -> Result<SeriesRow, sqlx::Error> {
    Ok(SeriesRow {
        study_uid: r.try_get("study_uid")?,
        series_uid: r.try_get("series_uid")?,
        modality: opt(r, "modality")?,
        series_number: r.try_get("series_number")?,
        series_description: opt(r, "series_description")?,
        series_date: opt(r, "series_date")?,
        instance_count: r.try_get("instance_count")?,
    })
}

/// An instance of the index.
#[derive(Debug, Clone)]
pub struct InstanceRow {
    pub study_uid: String,
    pub series_uid: String,
    pub sop_instance_uid: String,
    pub sop_class_uid: String,
    pub transfer_syntax: String,
    pub instance_number: Option<i64>,
    pub rows: Option<i64>,
    pub columns: Option<i64>,
    pub frames: Option<i64>,
    pub bits_allocated: Option<i64>,
    pub size: i64,
    pub object_key: String,
}

/// `instances i` rows of the permit's study, narrowed to a series and/or one instance, and
/// the ORDER BY that lists them as a viewer expects.
pub(super) fn instances_of(
    permit: &Permit<ImagingRead>,
    series: Option<&str>,
    sop: Option<&str>,
) -> Where {
    let study = permit.target().id.clone().unwrap_or_default();
    let mut w = Where::new();
    let s = w.arg(study);
    w.push(&format!("i.study_uid = {s}"));
    if let Some(x) = series {
        let p = w.arg(x);
        w.push(&format!("i.series_uid = {p}"));
    }
    if let Some(x) = sop {
        let p = w.arg(x);
        w.push(&format!("i.sop_instance_uid = {p}"));
    }
    w.sql.push_str(" ORDER BY i.series_uid, i.instance_number, i.sop_instance_uid");
    w
}

/// Instances of the permit's study, narrowed to a series and/or one instance.
pub async fn list_instances(
    db: &Db,
    permit: &Permit<ImagingRead>,
    series: Option<&str>,
    sop: Option<&str>,
) -> Result<Vec<InstanceRow>, sqlx::Error> {
    let w = instances_of(permit, series, sop);
    let sql = format!("SELECT {INSTANCE_COLUMNS} FROM instances i{}", w.sql);
    let rows = w.bind(sqlx::query(&sql)).fetch_all(db.pool()).await?;
    rows.iter().map(instance_row).collect()
}

/// The instance columns `instance_row` reads — not `i.*`, which would drag each instance's
/// metadata and frame index along into every listing and retrieve.
pub(super) const INSTANCE_COLUMNS: &str = "i.study_uid, i.series_uid, i.sop_instance_uid, i.sop_class_uid, \
    i.transfer_syntax, i.instance_number, i.rows_count, i.columns_count, i.frames, \
    i.bits_allocated, i.size, i.object_key";

pub(super) fn instance_row(r: &AnyRow) -> Result<InstanceRow, sqlx::Error> {
    Ok(InstanceRow {
        study_uid: r.try_get("study_uid")?,
        series_uid: r.try_get("series_uid")?,
        sop_instance_uid: r.try_get("sop_instance_uid")?,
        sop_class_uid: r.try_get("sop_class_uid")?,
        transfer_syntax: r.try_get("transfer_syntax")?,
        instance_number: r.try_get("instance_number")?,
        rows: r.try_get("rows_count")?,
        columns: r.try_get("columns_count")?,
        frames: r.try_get("frames")?,
        bits_allocated: r.try_get("bits_allocated")?,
        size: r.try_get("size")?,
        object_key: r.try_get("object_key")?,
    })
}

#[cfg(test)]
mod tests {
    use super::prefix_range;

    #[test]
    fn wildcard_prefixes_become_safe_ranges() {
        let r = prefix_range;
        assert_eq!(r("Smith*"), Some(("smith".into(), "smiti".into())));
        // Only letters and digits: the PN separator ends the literal prefix.
        assert_eq!(r("SCALE^PAT*"), Some(("scale".into(), "scalf".into())));
        // A trailing z or 9 has no successor among letters and digits: it is dropped.
        assert_eq!(r("Liz*"), Some(("li".into(), "lj".into())));
        assert_eq!(r("A19*"), Some(("a1".into(), "a2".into())));
        assert_eq!(r("*son"), None);
        assert_eq!(r("zz*"), None);
        assert_eq!(r("?ohn"), None);
    }
}
