//! Limits AWS enforces on what every kind passes through, checked before the first AWS write:
//! extra tags (count, reserved prefixes, lengths), the owner tag value made from the object's
//! namespace and name, and the region. Each message names the field and the fix.

use std::collections::BTreeMap;

use super::common::AwsOverride;
use super::validation::ValidationErrors;

/// Tags AWS allows on one resource.
pub const MAX_TAGS: usize = 50;
/// Tags the operator adds itself at most (cluster, owner, uid; a HotPool task's launch token and
/// version), counted against [`MAX_TAGS`].
pub const OPERATOR_TAGS: usize = 5;
/// Longest tag key and value AWS accepts.
pub const MAX_TAG_KEY: usize = 128;
/// Longest tag value.
pub const MAX_TAG_VALUE: usize = 256;
/// The operator's own tag prefix: a user tag there would pass for (or hide) an ownership mark.
pub const OPERATOR_PREFIX: &str = "fargate.operator.dev/";

/// Regions AWS runs (commercial, China, GovCloud), so a typo fails here, not as endless retries
/// against an endpoint that does not exist.
pub const REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "cn-north-1",
    "cn-northwest-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-gov-east-1",
    "us-gov-west-1",
    "us-west-1",
    "us-west-2",
];

/// `spec.tags` and `spec.aws.region`, the same for every kind.
pub fn check_common(errs: &mut ValidationErrors, tags: &BTreeMap<String, String>, aws: Option<&AwsOverride>) {
    let room = MAX_TAGS - OPERATOR_TAGS;
    if tags.len() > room {
        errs.push(
            "spec.tags",
            format!("{} tags; AWS allows {MAX_TAGS} per resource and the operator adds up to {OPERATOR_TAGS}: use at most {room}", tags.len()),
        );
    }
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > MAX_TAG_KEY {
            errs.push("spec.tags", format!("key {k:?}: use 1 to {MAX_TAG_KEY} characters"));
        } else if k.to_ascii_lowercase().starts_with("aws:") {
            errs.push("spec.tags", format!("key {k:?}: the aws: prefix is reserved for AWS; rename the key"));
        } else if k.starts_with(OPERATOR_PREFIX) {
            errs.push(
                "spec.tags",
                format!(
                    "key {k:?}: the {OPERATOR_PREFIX} prefix marks ownership and is set by the operator; rename the key"
                ),
            );
        }
        if v.chars().count() > MAX_TAG_VALUE {
            errs.push("spec.tags", format!("value of {k:?}: use at most {MAX_TAG_VALUE} characters"));
        }
    }
    if let Some(region) = aws.and_then(|a| a.region.as_deref())
        && !REGIONS.contains(&region)
    {
        errs.push(
            "spec.aws.region",
            format!("{region:?} is not an AWS region; use one such as us-east-1 or eu-west-1"),
        );
    }
}

/// The owner tag value `<namespace>/<kind>/<name>` must fit a tag value.
pub fn check_owner(errs: &mut ValidationErrors, namespace: &str, kind: &str, name: &str) {
    let len = namespace.chars().count() + kind.chars().count() + name.chars().count() + 2;
    if len > MAX_TAG_VALUE {
        let room = MAX_TAG_VALUE.saturating_sub(namespace.chars().count() + kind.chars().count() + 2);
        errs.push(
            "metadata.name",
            format!("the owner tag {namespace}/{kind}/<name> would be {len} characters and AWS tag values hold {MAX_TAG_VALUE}: in this namespace use a name of at most {room} characters"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs_of(tags: &[(&str, &str)], region: Option<&str>) -> ValidationErrors {
        let mut errs = ValidationErrors::default();
        let tags = tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let aws = AwsOverride { region: region.map(str::to_string), ..Default::default() };
        check_common(&mut errs, &tags, Some(&aws));
        errs
    }

    #[test]
    fn tags_aws_refuses_are_refused_first_with_the_field_and_the_fix() {
        assert!(errs_of(&[("team", "a"), ("Cost-Center", "42")], Some("eu-west-1")).0.is_empty());
        let many: Vec<(String, String)> = (0..46).map(|i| (format!("k{i}"), "v".into())).collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let e = errs_of(&many, None);
        assert!(e.mentions("spec.tags") && e.to_string().contains("at most 45"), "{e}");
        assert!(errs_of(&many[..45], None).0.is_empty());
        for key in ["aws:cloudformation:stack", "AWS:x", "fargate.operator.dev/owner", ""] {
            assert!(errs_of(&[(key, "v")], None).mentions("spec.tags"), "{key:?}");
        }
        let long = "x".repeat(257);
        assert!(errs_of(&[("k", &long)], None).mentions("spec.tags"));
        assert!(errs_of(&[(&"k".repeat(129), "v")], None).mentions("spec.tags"));
    }

    #[test]
    fn a_region_must_be_one_aws_runs() {
        for ok in ["us-east-1", "eu-central-2", "us-gov-west-1", "cn-north-1"] {
            assert!(errs_of(&[], Some(ok)).0.is_empty(), "{ok}");
        }
        let e = errs_of(&[], Some("xx-fake-1"));
        assert!(e.mentions("spec.aws.region") && e.to_string().contains("xx-fake-1"), "{e}");
    }

    #[test]
    fn an_owner_tag_longer_than_a_tag_value_names_the_longest_name_that_fits() {
        let mut errs = ValidationErrors::default();
        check_owner(&mut errs, "team-a", "FargateApp", &"n".repeat(200));
        assert!(errs.0.is_empty());
        check_owner(&mut errs, &"n".repeat(63), "DnsFailover", &"n".repeat(253));
        assert!(errs.mentions("metadata.name") && errs.to_string().contains("at most 180 characters"), "{errs}");
    }
}
