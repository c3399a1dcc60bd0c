//! STS in memory: which roles objects may assume (`spec.aws.roleArn`, with its external id).
//!
//! Every role is assumable until a test revokes it ([`ModelSts::revoke_role`]), as when a team
//! removes the operator from a role's trust policy; [`ModelSts::restore_role`] gives it back. A
//! role may also require an external id, as a trust policy's `sts:ExternalId` condition does. Both
//! refusals are what STS answers: `AccessDenied` (Terminal).
//!
//! The default identity (objects without `spec.aws.roleArn`) assumes nothing and is never asked
//! about here, so it is always usable.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use super::error;
use crate::aws::errors::{Classified, ErrorCategory};

#[derive(Debug, Default)]
struct State {
    revoked: BTreeSet<String>,
    external_ids: BTreeMap<String, String>,
    asked: BTreeMap<String, u64>,
}

/// The roles of the model and whether each can be assumed now.
#[derive(Debug)]
pub struct ModelSts {
    account: String,
    state: Mutex<State>,
}

impl ModelSts {
    /// STS for the operator's own `account` (named in refusals, as STS names the caller).
    pub fn new(account: &str) -> Self {
        Self { account: account.into(), state: Mutex::default() }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Refuse `role_arn` from now on (its trust policy no longer names the operator). True when
    /// it was assumable before.
    pub fn revoke_role(&self, role_arn: &str) -> bool {
        self.state().revoked.insert(role_arn.into())
    }

    /// Make `role_arn` assumable again. True when it was revoked.
    pub fn restore_role(&self, role_arn: &str) -> bool {
        self.state().revoked.remove(role_arn)
    }

    /// Require `external_id` to assume `role_arn` (`None`: no longer require one).
    pub fn require_external_id(&self, role_arn: &str, external_id: Option<&str>) {
        let mut st = self.state();
        match external_id {
            Some(id) => st.external_ids.insert(role_arn.into(), id.into()),
            None => st.external_ids.remove(role_arn),
        };
    }

    /// How many times AssumeRole of `role_arn` was asked, granted or not (a client asks before
    /// each call, so this shows whether credentials were re-checked).
    pub fn assume_role_calls(&self, role_arn: &str) -> u64 {
        self.state().asked.get(role_arn).copied().unwrap_or(0)
    }

    /// AssumeRole of `role_arn` with `external_id`: granted unless the role is revoked or wants
    /// another external id; then `AccessDenied`.
    pub fn assume_role(&self, role_arn: &str, external_id: Option<&str>) -> Result<(), Classified> {
        let mut st = self.state();
        *st.asked.entry(role_arn.into()).or_default() += 1;
        let trusted = !st.revoked.contains(role_arn);
        let id_matches = st.external_ids.get(role_arn).is_none_or(|want| Some(want.as_str()) == external_id);
        if trusted && id_matches {
            return Ok(());
        }
        // STS does not say which condition failed; neither does the model.
        let message = format!(
            "User: arn:aws:sts::{}:assumed-role/fargate-operator/fargate-operator is not authorized to \
             perform: sts:AssumeRole on resource: {role_arn}",
            self.account
        );
        Err(error(ErrorCategory::Terminal, "AccessDenied", &message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLE: &str = "arn:aws:iam::123456789012:role/team-a";

    #[test]
    fn a_revoked_role_is_denied_until_restored_and_others_stay_assumable() {
        let sts = ModelSts::new("123456789012");
        assert_eq!(sts.assume_role(ROLE, None), Ok(()), "any role is assumable until revoked");
        assert!(sts.revoke_role(ROLE));
        assert!(!sts.revoke_role(ROLE), "already revoked");
        let denied = sts.assume_role(ROLE, None).expect_err("revoked");
        assert_eq!((denied.category, denied.code.as_str()), (ErrorCategory::Terminal, "AccessDenied"));
        assert!(denied.message.contains(ROLE), "{}", denied.message);
        assert_eq!(sts.assume_role("arn:aws:iam::123456789012:role/team-b", None), Ok(()));
        assert!(sts.restore_role(ROLE));
        assert!(!sts.restore_role(ROLE), "already restored");
        assert_eq!(sts.assume_role(ROLE, None), Ok(()));
        assert_eq!(sts.assume_role_calls(ROLE), 3);
    }

    #[test]
    fn a_required_external_id_must_match() {
        let sts = ModelSts::new("123456789012");
        sts.require_external_id(ROLE, Some("tenant-1"));
        assert_eq!(sts.assume_role(ROLE, Some("tenant-1")), Ok(()));
        for wrong in [None, Some("tenant-2")] {
            let denied = sts.assume_role(ROLE, wrong).expect_err("wrong external id");
            assert_eq!((denied.category, denied.code.as_str()), (ErrorCategory::Terminal, "AccessDenied"));
        }
        sts.require_external_id(ROLE, None);
        assert_eq!(sts.assume_role(ROLE, None), Ok(()));
    }
}
