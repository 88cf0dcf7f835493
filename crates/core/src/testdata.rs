//! Small, valid example records for tests (here and in other crates' tests).

use chrono::{NaiveDate, NaiveDateTime};

use crate::doc::Author;
use crate::domain::*;

fn at(s: &str) -> NaiveDateTime {
    crate::validate::parse_datetime(s).expect("valid date-time")
}

/// The smallest thumbnail the checks accept: a JPEG start, a frame header (1×1, one
/// component) and an end, the way `validate::check_jpeg` reads it.
pub const THUMBNAIL: &[u8] = &[
    0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x0B, 0x08, 0x00, 0x01, 0x00, 0x01, 0x01, 0x01, 0x11, 0x00, 0xFF,
    0xD9,
];

/// A thumbnail like [`THUMBNAIL`], `width` pixels wide: different bytes for different photos.
pub fn thumbnail(width: u8) -> Vec<u8> {
    let mut t = THUMBNAIL.to_vec();
    t[10] = width.max(1);
    t
}

/// An author for tests: member `member-0001` on a device whose actor is `[n; 16]`.
pub fn author(member: &str, n: u8) -> Author {
    Author::new(member, &format!("device-{n:02}"), &[n; 16]).expect("valid author")
}

pub fn visit() -> Visit {
    Visit {
        target_kind: TargetKind::Village,
        contact_point: "cp-001".into(),
        group: "group-01".into(),
        activity_type: ActivityType::ResearchSymposium,
        start: at("2026-05-19T09:00"),
        end: at("2026-05-19T11:30"),
        title: "孝南区杨店镇人居环境整治座谈".into(),
        summary: "与村两委和村民代表座谈，听取对垃圾清运和道路硬化的意见。".into(),
        participants: vec!["member-0001".into(), "member-0002".into()],
        helpers: vec!["村医 王桂兰".into()],
        gps: Some(Gps {
            lat: 30.9245,
            lon: 113.9101,
        }),
        photos: vec![],
    }
}

pub fn opinion() -> Opinion {
    Opinion {
        topic: "农村饮水安全".into(),
        opinion_kind: OpinionKind::MicroSuggestion,
        text: "村民反映自来水管网老化，夏季常停水，建议纳入明年改造计划。".into(),
        source: Some("村民 李德明".into()),
        urgency: Urgency::Urgent,
        contact_point: "cp-001".into(),
        group: "group-01".into(),
        recorded_on: NaiveDate::from_ymd_opt(2026, 5, 19).expect("valid date"),
        visit: None,
    }
}

pub fn household() -> Household {
    Household {
        head_name: "张秋菊".into(),
        contact_point: "cp-001".into(),
        group: "group-01".into(),
        address: "杨店镇新华村三组".into(),
        size: 3,
        situation: "丈夫因病去世，独自抚养两个孩子。".into(),
        assisting_members: vec!["member-0001".into()],
        log: vec![AssistanceEntry {
            date: NaiveDate::from_ymd_opt(2026, 3, 2).expect("valid date"),
            member: "member-0001".into(),
            action: "送去慰问金和米油".into(),
            amount_yuan: Some(500.0),
        }],
    }
}

/// One valid record of every kind.
pub fn one_of_each() -> Vec<RecordData> {
    vec![
        RecordData::Visit(visit()),
        RecordData::Opinion(opinion()),
        RecordData::Household(household()),
        RecordData::Plan(PlanItem {
            year: 2026,
            quarter: 2,
            month: 5,
            owner: "member-0001".into(),
            group: "group-01".into(),
            activity_type: ActivityType::ResearchSymposium,
            title: "人居环境整治专题调研".into(),
            contact_point: Some("cp-001".into()),
        }),
        RecordData::Member(Member {
            name: "刘建国".into(),
            chapter: "chapter-city".into(),
            committee: Some("committee-1".into()),
            group: "group-01".into(),
            sector: "农业和农村界".into(),
        }),
        RecordData::Committee(Committee {
            name: "提案委员会".into(),
            chapter: "chapter-city".into(),
        }),
        RecordData::Group(Group {
            name: "第一委员活动组".into(),
            chapter: "chapter-city".into(),
            committee: Some("committee-1".into()),
            leader: "member-0001".into(),
            contact_points: vec!["cp-001".into()],
            legal_advisory: false,
        }),
        RecordData::ContactPoint(ContactPoint {
            name: "新华村".into(),
            target_kind: TargetKind::Village,
            chapter: "chapter-city".into(),
            address: "孝南区杨店镇".into(),
            gps: None,
        }),
        RecordData::Chapter(Chapter {
            name: "孝感市政协".into(),
            level: ChapterLevel::City,
            parent: None,
        }),
    ]
}
