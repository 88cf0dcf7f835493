//! The 三进 domain in its own words: visits, opinion notes, households, plan items and the directory.
//!
//! These are plain data types. How they live inside an automerge document is `doc.rs`'s business;
//! what makes them valid is `validate.rs`'s.

use chrono::{NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};

/// Declares a closed vocabulary: each variant has a stable code (used in documents, the index,
/// JSON and flags) and a Simplified Chinese label (what members read). Parsing accepts either.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($variant:ident => $code:literal, $zh:literal;)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant,)+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];
            /// What this vocabulary is called, for error messages.
            pub const WHAT: &'static str = $what;

            /// The stable code.
            pub fn code(self) -> &'static str {
                match self { $($name::$variant => $code,)+ }
            }

            /// The label members read.
            pub fn zh(self) -> &'static str {
                match self { $($name::$variant => $zh,)+ }
            }

            /// Parses a code or a Chinese label.
            pub fn parse(s: &str) -> Option<Self> {
                let s = s.trim();
                Self::ALL.iter().copied().find(|v| v.code() == s || v.zh() == s)
            }

            /// `code（中文）, …` — the accepted values, for error messages.
            pub fn choices() -> String {
                Self::ALL
                    .iter()
                    .map(|v| format!("{}（{}）", v.code(), v.zh()))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.code())
            }
        }
    };
}

vocabulary!(
    /// Where a visit goes: 进社区、进园区、进农村.
    TargetKind, "target_kind" {
        Community => "community", "社区";
        Park => "park", "园区";
        Village => "village", "农村";
    }
);

vocabulary!(
    /// The activity type. The first six are the yearly "六个一" of every activity group.
    ActivityType, "activity_type" {
        ResearchSymposium => "research_symposium", "调研座谈";
        ContactWindowUnit => "contact_window_unit", "联系窗口单位";
        SubmitSuggestions => "submit_suggestions", "反映建议";
        ConflictMediation => "conflict_mediation", "化解矛盾";
        Consultation => "consultation", "协商活动";
        PairAssistance => "pair_assistance", "结对帮扶";
        Lecture => "lecture", "委员讲堂";
        Bulletin => "bulletin", "宣传栏";
        HomeVisit => "home_visit", "入户走访";
        ReceptionDay => "reception_day", "委员接待日";
        ResidentMeeting => "resident_meeting", "群众约见委员";
        CommunityCouncil => "community_council", "社区议事会";
        PolicyConsultation => "policy_consultation", "政策咨询会";
    }
);

impl ActivityType {
    /// The yearly "六个一": one of each per activity group.
    pub const SIX_ONES: [ActivityType; 6] = [
        ActivityType::ResearchSymposium,
        ActivityType::ContactWindowUnit,
        ActivityType::SubmitSuggestions,
        ActivityType::ConflictMediation,
        ActivityType::Consultation,
        ActivityType::PairAssistance,
    ];

    /// Whether this type counts towards the "六个一".
    pub fn is_six_ones(self) -> bool {
        Self::SIX_ONES.contains(&self)
    }
}

vocabulary!(
    /// The kind of an opinion note (社情民意信息).
    OpinionKind, "opinion_kind" {
        Opinion => "opinion", "社情民意";
        MicroProposal => "micro_proposal", "微提案";
        MicroSuggestion => "micro_suggestion", "微建言";
        LegalAppeal => "legal_appeal", "法律诉求";
    }
);

vocabulary!(
    /// How urgent an opinion note is.
    Urgency, "urgency" {
        Normal => "normal", "一般";
        Urgent => "urgent", "紧急";
        VeryUrgent => "very_urgent", "特急";
    }
);

vocabulary!(
    /// The level of a chapter: the city CPPCC or a county one.
    ChapterLevel, "level" {
        City => "city", "市政协";
        County => "county", "县市区政协";
    }
);

vocabulary!(
    /// Every kind of record; each record is one automerge document.
    RecordKind, "kind" {
        Visit => "visit", "活动记录";
        Opinion => "opinion", "社情民意";
        Household => "household", "困难户";
        Plan => "plan", "年度计划";
        Member => "member", "委员";
        Committee => "committee", "专委会";
        Group => "group", "委员活动组";
        ContactPoint => "contact_point", "联系点";
        Chapter => "chapter", "政协组织";
        Unit => "unit", "承办单位";
    }
);

impl RecordKind {
    /// Directory entries are maintained by the office, not recorded in the field.
    pub fn is_directory(self) -> bool {
        matches!(
            self,
            RecordKind::Member
                | RecordKind::Committee
                | RecordKind::Group
                | RecordKind::ContactPoint
                | RecordKind::Chapter
                | RecordKind::Unit
        )
    }
}

/// A GPS fix in WGS-84 degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Gps {
    pub lat: f64,
    pub lon: f64,
}

impl Gps {
    /// Parses `lat,lon`.
    pub fn parse(s: &str) -> Option<Gps> {
        let (lat, lon) = s.split_once(',')?;
        Some(Gps {
            lat: lat.trim().parse().ok()?,
            lon: lon.trim().parse().ok()?,
        })
    }
}

impl std::fmt::Display for Gps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.6},{:.6}", self.lat, self.lon)
    }
}

/// A photo attached to a record, by content address. The original's bytes travel separately
/// (blob transfer); its thumbnail travels inside the record's document (see
/// [`crate::RecordDoc::attach_photo`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhotoRef {
    /// Hex content hash of the original (SHA-256, `sanjin_media::hash`).
    pub hash: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub caption: String,
    /// When the photo was taken (EXIF, the camera's wall clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_at: Option<NaiveDateTime>,
    /// Where it was taken (EXIF GPS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gps: Option<Gps>,
    /// The original's size in bytes.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bytes: u64,
    /// The picture's width and height as shown (EXIF orientation applied).
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub width: u32,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub height: u32,
    /// The original's media type (`image/jpeg`, `image/png`, `image/webp`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mime: String,
}

impl PhotoRef {
    /// A reference with only a hash (older records, tests).
    pub fn new(hash: &str) -> PhotoRef {
        PhotoRef {
            hash: hash.into(),
            caption: String::new(),
            taken_at: None,
            gps: None,
            bytes: 0,
            width: 0,
            height: 0,
            mime: String::new(),
        }
    }
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

/// A visit / activity record (活动记录).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Visit {
    pub target_kind: TargetKind,
    /// Contact point (联系点) id.
    pub contact_point: String,
    /// Activity group (委员活动组) id.
    pub group: String,
    pub activity_type: ActivityType,
    pub start: NaiveDateTime,
    pub end: NaiveDateTime,
    pub title: String,
    /// Free text; merges by characters.
    #[serde(default)]
    pub summary: String,
    /// Member ids; a set.
    #[serde(default)]
    pub participants: Vec<String>,
    /// Non-member helpers (辅助力量) by name; a set.
    #[serde(default)]
    pub helpers: Vec<String>,
    #[serde(default)]
    pub gps: Option<Gps>,
    /// A set keyed by hash.
    #[serde(default)]
    pub photos: Vec<PhotoRef>,
}

/// An opinion note (社情民意信息): what residents said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Opinion {
    pub topic: String,
    /// Named so, not `kind`: `kind` is the record's tag in JSON.
    pub opinion_kind: OpinionKind,
    /// Free text; merges by characters.
    #[serde(default)]
    pub text: String,
    /// Who said it; `None` when the source stays anonymous (匿名).
    #[serde(default)]
    pub source: Option<String>,
    pub urgency: Urgency,
    pub contact_point: String,
    pub group: String,
    pub recorded_on: NaiveDate,
    /// The visit it came up in, if any.
    #[serde(default)]
    pub visit: Option<String>,
}

/// One entry of a household's assistance log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssistanceEntry {
    pub date: NaiveDate,
    pub member: String,
    pub action: String,
    /// Money or goods given, in yuan, if any.
    #[serde(default)]
    pub amount_yuan: Option<f64>,
}

/// A household in difficulty (困难户) under pair assistance (结对帮扶).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Household {
    pub head_name: String,
    pub contact_point: String,
    pub group: String,
    pub address: String,
    pub size: i64,
    /// Why the household is in difficulty; merges by characters.
    #[serde(default)]
    pub situation: String,
    /// Member ids paired with the household; a set.
    #[serde(default)]
    pub assisting_members: Vec<String>,
    /// Append-only; concurrent entries are all kept.
    #[serde(default)]
    pub log: Vec<AssistanceEntry>,
}

/// A plan item (年度计划): planned activity by quarter, month and person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanItem {
    pub year: i64,
    pub quarter: i64,
    pub month: i64,
    /// The member it is assigned to (明确到人).
    pub owner: String,
    pub group: String,
    pub activity_type: ActivityType,
    pub title: String,
    #[serde(default)]
    pub contact_point: Option<String>,
}

/// A CPPCC member (委员).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub chapter: String,
    #[serde(default)]
    pub committee: Option<String>,
    pub group: String,
    /// The sector (界别) the member represents.
    #[serde(default)]
    pub sector: String,
}

/// A special committee (专委会).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Committee {
    pub name: String,
    pub chapter: String,
}

/// An activity group (委员活动组); may mix city and county members (混合编组).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    pub chapter: String,
    #[serde(default)]
    pub committee: Option<String>,
    /// The leader's member id (组长).
    pub leader: String,
    /// Contact point ids; a set.
    #[serde(default)]
    pub contact_points: Vec<String>,
    /// The legal advisory group (法律顾问委员活动组, issue 13): legal appeals (法律诉求) recorded
    /// by any group are also read by its members and handled by its leader
    /// ([`crate::rules::legal_group`]). Absent (and not written into the document) when false,
    /// so records made before the field existed read the same.
    #[serde(default, deserialize_with = "false_if_null")]
    pub legal_advisory: bool,
}

/// A flag that reads `null` (a document without the field) as `false`.
fn false_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or(false))
}

/// A contact point (联系点): a community, park or village.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactPoint {
    pub name: String,
    pub target_kind: TargetKind,
    pub chapter: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub gps: Option<Gps>,
}

/// A chapter: the city CPPCC or a county one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chapter {
    pub name: String,
    pub level: ChapterLevel,
    #[serde(default)]
    pub parent: Option<String>,
}

/// A unit that handles residents' opinions forwarded to it (承办单位, issue 13): a directory
/// entry with an id (`unit-001`) and a name, imported like the rest of the directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unit {
    pub name: String,
    /// The chapter whose office forwards to it, if known.
    #[serde(default)]
    pub chapter: Option<String>,
}

/// The data of any record, tagged by kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RecordData {
    Visit(Visit),
    Opinion(Opinion),
    Household(Household),
    Plan(PlanItem),
    Member(Member),
    Committee(Committee),
    Group(Group),
    ContactPoint(ContactPoint),
    Chapter(Chapter),
    Unit(Unit),
}

impl RecordData {
    pub fn kind(&self) -> RecordKind {
        match self {
            RecordData::Visit(_) => RecordKind::Visit,
            RecordData::Opinion(_) => RecordKind::Opinion,
            RecordData::Household(_) => RecordKind::Household,
            RecordData::Plan(_) => RecordKind::Plan,
            RecordData::Member(_) => RecordKind::Member,
            RecordData::Committee(_) => RecordKind::Committee,
            RecordData::Group(_) => RecordKind::Group,
            RecordData::ContactPoint(_) => RecordKind::ContactPoint,
            RecordData::Chapter(_) => RecordKind::Chapter,
            RecordData::Unit(_) => RecordKind::Unit,
        }
    }
}
