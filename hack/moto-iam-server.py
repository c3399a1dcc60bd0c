#!/usr/bin/env python3
"""moto_server with IAM enforcement made usable by the Rust SDK, for tests/iam_policy.rs.

Run it with the venv's interpreter, exactly like moto_server, with INITIAL_NO_AUTH_ACTION_COUNT
set (moto authenticates and authorises every request after that many):

    INITIAL_NO_AUTH_ACTION_COUNT=3 ~/.cache/fargate-operator/venv/bin/python \
        hack/moto-iam-server.py -H 127.0.0.1 -p 15100

It imports moto 5.2.5 (the version hack/lib.sh pins), fixes two wire-format bugs of moto's IAM
mode, keeps ECS tasks RUNNING until stopped (the state transition hack/env-up.sh sets on the
shared server, set here in-process), and then runs moto's own server main. Neither fix touches
moto's policy evaluation (which statements allow or deny an action): they only let requests that
AWS itself would accept get as far as that evaluation, and let SDKs read its AccessDenied answer.

1. The body the signature check uses. moto recomputes the SigV4 signature over an AWSRequest
   whose body is `raw_body or data` (`data`: the parsed form, query string or even headers).
   For a GET or DELETE without a body that gives a non-empty body, so every Route 53 read and
   DeleteHealthCheck (REST protocol) fails with SignatureDoesNotMatch. For a form-encoded POST
   (query protocol: EC2, ELBv2, IAM, STS) werkzeug has moved the body into the form, and
   botocore re-encodes the parsed form its own way (`+` for a space); the Rust SDK sends `%20`,
   so e.g. ec2:CreateSecurityGroup with a description containing a space fails with AuthFailure.
   Fixed: no body for GET, DELETE and HEAD, and the form's original bytes kept for the check.

2. The form of the AccessDenied answer. moto sends `<ErrorResponse><Errors><Error>` for every
   service. AWS wraps the error one level less for the query protocol (ELBv2, STS, IAM) and for
   Route 53 (`<ErrorResponse><Error>`), and ECS (awsJson1.1) answers
   `{"__type": "AccessDeniedException", "message": ...}`. The Rust SDK finds no code in moto's
   form (an unhandled `Http403` error without the message), so the operator could not say
   AccessDenied. Fixed: the same code and message, in the form the service's protocol uses.
"""

import json
import pathlib
import sys
from xml.sax.saxutils import escape

from botocore.awsrequest import AWSRequest

import moto.core.responses as core_responses
import moto.iam.access_control as access_control
from moto.core.request import Request
from moto.moto_api import state_manager
from moto.server import main

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import moto_idempotency  # noqa: E402  (hack/moto_idempotency.py: the tokens moto ignores)


def _signed_body(self):
    """The body as the client signed it."""
    if self._method in ("GET", "DELETE", "HEAD"):
        return b""
    return self._body or self._data


_load_form_data = Request._load_form_data


def _load_form_data_keeping_body(self):
    # werkzeug parses a form-encoded body into `form` and leaves `data` empty; keep the bytes for
    # the signature check, and leave `data` as empty as werkzeug does.
    if "form" not in self.__dict__ and self.mimetype == "application/x-www-form-urlencoded":
        self._signed_form_body = self.get_data(cache=True)
        _load_form_data(self)
        self._cached_data = b""
        return
    _load_form_data(self)


Request._load_form_data = _load_form_data_keeping_body


def _create_aws_request(self):
    signed_headers = self._get_string_between("SignedHeaders=", ",", self._headers["Authorization"]).split(";")
    headers = self._create_headers_for_aws_request(signed_headers, self._headers)
    request = AWSRequest(method=self._method, url=self._path, data=_signed_body(self), headers=headers)
    request.context["timestamp"] = headers["X-Amz-Date"]
    return request


access_control.IAMRequestBase._create_aws_request = _create_aws_request

_authorize = core_responses.BaseResponse._authenticate_and_authorize_normal_action


def _authenticate_and_authorize_normal_action(self, resource="*"):
    raw_body = self.raw_body
    if not raw_body:
        self.raw_body = getattr(self.normalized_request, "_signed_form_body", None) or raw_body
    try:
        _authorize(self, resource)
    except access_control.AccessDeniedError as err:
        # call_action sends `err.description` with `self.response_headers`.
        if self.headers.get("X-Amz-Target"):
            err.description = json.dumps({"__type": "AccessDeniedException", "message": err.message})
            self.response_headers["Content-Type"] = "application/x-amz-json-1.1"
            self.response_headers["X-Amzn-ErrorType"] = "AccessDeniedException"
        else:
            err.description = (
                '<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse><Error><Type>Sender</Type>'
                f"<Code>AccessDenied</Code><Message>{escape(err.message)}</Message></Error>"
                "<RequestId>moto-iam</RequestId></ErrorResponse>"
            )
            self.response_headers["Content-Type"] = "text/xml"
        raise
    finally:
        self.raw_body = raw_body


core_responses.BaseResponse._authenticate_and_authorize_normal_action = _authenticate_and_authorize_normal_action

if __name__ == "__main__":
    moto_idempotency.apply()
    state_manager.set_transition(model_name="ecs::task", transition={"progression": "manual", "times": 1000000})
    sys.exit(main())
