"""Local stand-in for the Azure AD (Entra ID) identity provider and the Azure Resource
Manager query path, served by la_server.py on the same loopback port as the query API.

Standard library only, plus the `openssl` command line tool (certificate client assertions).

Registered test identities (the value of each constant is its own name):
  tenant            TEST_TENANT ("common"/"organizations" too, for authorization_code and
                    refresh_token only)
  client            TEST_CLIENT, secret TEST_SECRET (client_secret in the form, or HTTP Basic)
  cert client       TEST_CERT_CLIENT: client assertion (RS256 JWT) checked against the
                    certificate given by `--client-cert TEST_CERT_CLIENT=PEM_PATH` (repeatable;
                    other client ids given that way are registered as certificate clients too)
  workload client   TEST_WORKLOAD_CLIENT: client_assertion = TEST_FEDERATED_TOKEN (jwt-bearer)
  auth code         TEST_CODE, for TEST_CLIENT with redirect_uri http://localhost:8400/callback;
                    one use (restored by a reset)
  refresh token     TEST_REFRESH_TOKEN for TEST_CLIENT; refresh tokens rotate: each use returns
                    a new `rt-...` and consumes the one used (TEST_REFRESH_TOKEN is restored by
                    a reset)
  managed identity  system-assigned (no selector; reports client_id TEST_MI_SYSTEM_CLIENT), and
                    one user-assigned: client_id TEST_MI_CLIENT, object/principal id
                    TEST_MI_OBJECT, resource id TEST_MI_RESOURCE_ID (below)
  App Service       X-IDENTITY-HEADER: TEST_IDENTITY_HEADER
Audiences: https://api.loganalytics.io (aliases api.loganalytics.azure.com, .us, .azure.cn),
the query API; https://management.azure.com, Resource Manager.

Endpoints:
  POST /{tenant}/oauth2/v2.0/token   client_credentials | authorization_code | refresh_token
  POST /{tenant}/oauth2/token        the same, v1 (`resource=` instead of `scope=`)
  GET  /{tenant}/oauth2/v2.0/authorize, /{tenant}/oauth2/authorize
                                     200 text: "authorize endpoint" + the parameters as JSON
  GET  /metadata/identity/oauth2/token  IMDS (header Metadata: true)
  GET  /msi/token                    App Service / Functions (api-version 2019-08-01)
  POST /subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.OperationalInsights/
       workspaces/demo-workspace/api/query?api-version=2017-10-01   (Resource Manager; la_server
                                     serves the demo data after arm_check() admits the call;
                                     the service lists this route among those to migrate from,
                                     the client no longer uses it)
  GET  /subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.OperationalInsights/
       workspaces/{name}?api-version=2022-10-01   (Resource Manager's workspace GET, answered by
                                     arm_workspace(): the workspace as Resource Manager shows it,
                                     see WORKSPACE_SHAPE; any subscription and group)
                                     demo-workspace: customerId DEMO_CUSTOMER_ID, which the query
                                     API serves as DEMO_WORKSPACE
                                     TEST_FORBIDDEN_WORKSPACE: 403 AuthorizationFailed
                                     TEST_NO_CUSTOMER_ID: 200 without properties.customerId
                                     TEST_BAD_CUSTOMER_ID: 200, customerId "../DEMO_WORKSPACE"
                                     any other name: 404 ResourceNotFound
Access tokens are opaque (`at-<n>-<hex>`), remembered with their audience and expiry.

Test control (no auth, not counted):
  GET  /_test/identity   {"token_requests", "issued", "requests": [last 100 token requests],
                          "expires_in", "refresh_in", "fail_next", "token_delay_ms"}
  POST /_test/identity   JSON, any of: {"reset": true} (first), {"expires_in": s},
                          {"refresh_in": s|null}, {"fail_next": n, "status": 500,
                          "retry_after": s?}, {"client_certs": {"<client_id>": PEM text|path}},
                          {"token_delay_ms": ms} (every token answer waits that long first),
                          {"echo_next": n, "status": 400?}: the next n token answers (any
                          endpoint, IMDS and App Service too) are that error, quoting the
                          request back: the secret it carried (client_secret, client_assertion,
                          refresh_token, code, X-IDENTITY-HEADER) as `error` and
                          `correlation_id`, and the target, raw form and every parameter
                          and header in `error_description`
  POST /_test/revoke     every access token issued so far becomes invalid
"""

import base64
import collections
import datetime as dt
import hashlib
import json
import re
import secrets
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, unquote

TEST_TENANT = "TEST_TENANT"
TEST_CLIENT = "TEST_CLIENT"
TEST_SECRET = "TEST_SECRET"
TEST_CERT_CLIENT = "TEST_CERT_CLIENT"
TEST_WORKLOAD_CLIENT = "TEST_WORKLOAD_CLIENT"
TEST_FEDERATED_TOKEN = "TEST_FEDERATED_TOKEN"
TEST_CODE = "TEST_CODE"
TEST_REDIRECT_URI = "http://localhost:8400/callback"
TEST_REFRESH_TOKEN = "TEST_REFRESH_TOKEN"
TEST_MI_CLIENT = "TEST_MI_CLIENT"
TEST_MI_OBJECT = "TEST_MI_OBJECT"
TEST_MI_RESOURCE_ID = ("/subscriptions/s/resourcegroups/g/providers/"
                       "Microsoft.ManagedIdentity/userAssignedIdentities/test-mi")
TEST_MI_SYSTEM_CLIENT = "TEST_MI_SYSTEM_CLIENT"
TEST_IDENTITY_HEADER = "TEST_IDENTITY_HEADER"

QUERY, ARM = "query", "arm"  # the two audiences a token can be issued for
RESOURCES = {"https://api.loganalytics.io": QUERY, "https://api.loganalytics.azure.com": QUERY,
             "https://api.loganalytics.us": QUERY, "https://api.loganalytics.azure.cn": QUERY,
             "https://management.azure.com": ARM}
ARM_API_VERSION = "2017-10-01"
ARM_WORKSPACE = "demo-workspace"
ARM_QUERY_RE = re.compile(r"/subscriptions/([^/]+)/resourcegroups/([^/]+)/providers/"
                          r"microsoft\.operationalinsights/workspaces/([^/]+)/api/query", re.I)
ARM_WORKSPACE_RE = re.compile(r"/subscriptions/([^/]+)/resourcegroups/([^/]+)/providers/"
                              r"microsoft\.operationalinsights/workspaces/([^/]+)", re.I)
WORKSPACE_API_VERSION = "2022-10-01"
# demo-workspace's customer id: the query API (la_server.py) serves it as DEMO_WORKSPACE
DEMO_CUSTOMER_ID = "8a1d5c2e-4b7f-4e0a-9c3d-2f6b1e9a7d40"
TEST_FORBIDDEN_WORKSPACE = "TEST_FORBIDDEN_WORKSPACE"
TEST_NO_CUSTOMER_ID = "TEST_NO_CUSTOMER_ID"
TEST_BAD_CUSTOMER_ID = "TEST_BAD_CUSTOMER_ID"

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
GRANTS = ("client_credentials", "authorization_code", "refresh_token")
OIDC_SCOPES = {"openid", "profile", "offline_access", "email"}
SKEW = 300  # seconds of clock skew allowed on client assertions
DEFAULT_EXPIRES_IN = 3599
JSON_CT = "application/json; charset=utf-8"
NO_CACHE = [("Cache-Control", "no-store, no-cache"), ("Pragma", "no-cache")]

Reply = collections.namedtuple("Reply", "status body headers")


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def json_reply(status, obj, headers=()):
    return Reply(status, dumps(obj), [("Content-Type", JSON_CT)] + list(headers))


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def utc_stamp(t):
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%m/%d/%Y %H:%M:%S")


# ---------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------

class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.tokens = {}        # access token -> {"aud", "resource", "expires", "revoked"}
        self.refresh = {TEST_REFRESH_TOKEN: {"client_id": TEST_CLIENT, "used": False}}
        self.codes = {TEST_CODE: {"client_id": TEST_CLIENT, "redirect_uri": TEST_REDIRECT_URI,
                                  "used": False}}
        self.seq = 0            # never reset: token numbers stay unique
        self.certs = {}         # client_id -> [{"pubkey", "x5t", "x5t#S256"}]
        self.reset()

    def reset(self):
        self.token_requests = self.issued = 0
        self.log = collections.deque(maxlen=100)
        self.expires_in, self.refresh_in = DEFAULT_EXPIRES_IN, None
        self.fail_next, self.fail_status, self.fail_retry_after = 0, 500, None
        self.token_delay_ms = 0
        self.echo_next, self.echo_status = 0, 400
        self.refresh[TEST_REFRESH_TOKEN]["used"] = False
        self.codes[TEST_CODE]["used"] = False


STATE = State()


def reset():
    """Counters, request log, lifetimes, fail_next; TEST_CODE and TEST_REFRESH_TOKEN usable
    again. Access tokens already issued keep their state."""
    with STATE.lock:
        STATE.reset()


def load_certificate(client_id, pem):
    """Registers a certificate (PEM path, or PEM text) for a certificate client."""
    with tempfile.TemporaryDirectory(prefix="la-idp-") as tmp:
        path = Path(pem)
        if "-----BEGIN" in pem:  # PEM text rather than a path
            path = Path(tmp) / "cert.pem"
            path.write_text(pem)
        elif not path.is_file():
            raise ValueError(f"no certificate file {pem!r}")
        pub = subprocess.run(["openssl", "x509", "-pubkey", "-noout", "-in", str(path)],
                             capture_output=True, timeout=10)
        der = subprocess.run(["openssl", "x509", "-outform", "DER", "-in", str(path)],
                             capture_output=True, timeout=10)
    if pub.returncode or der.returncode or not der.stdout:
        raise ValueError(f"openssl cannot read a certificate from {pem[:80]!r}: "
                         + (pub.stderr or der.stderr).decode("utf-8", "replace").strip())
    cert = {"pubkey": pub.stdout, "x5t": b64url(hashlib.sha1(der.stdout).digest()),
            "x5t#S256": b64url(hashlib.sha256(der.stdout).digest())}
    with STATE.lock:
        STATE.certs.setdefault(client_id, []).append(cert)


def configure(client_certs):
    """client_certs: ["CLIENT_ID=PEM_PATH", ...] from --client-cert. Raises ValueError."""
    for spec in client_certs or ():
        client_id, sep, path = spec.partition("=")
        if not sep or not client_id or not path:
            raise ValueError(f"--client-cert wants CLIENT_ID=PEM_PATH, not {spec!r}")
        load_certificate(client_id, path)


# ---------------------------------------------------------------------------
# Issued access tokens
# ---------------------------------------------------------------------------

def issue(aud, resource):
    """-> (token, expires_in, expires_on, now, refresh_in); caller holds no lock."""
    with STATE.lock:
        STATE.seq += 1
        STATE.issued += 1
        now = time.time()
        expires_in = STATE.expires_in
        token = f"at-{STATE.seq}-{secrets.token_hex(12)}"
        STATE.tokens[token] = {"aud": aud, "resource": resource, "expires": now + expires_in,
                               "revoked": False}
        return token, expires_in, int(now + expires_in), int(now), STATE.refresh_in


def new_refresh_token(client_id):
    token = "rt-" + secrets.token_hex(16)
    with STATE.lock:
        STATE.refresh[token] = {"client_id": client_id, "used": False}
    return token


def check_token(token, aud):
    """-> (status, detail): status "ok", "unknown", "revoked", "expired" (detail: expiry epoch)
    or "audience" (detail: the resource it was issued for)."""
    with STATE.lock:
        t = STATE.tokens.get(token)
        if t is None:
            return "unknown", None
        if t["revoked"]:
            return "revoked", None
        if time.time() >= t["expires"]:
            return "expired", t["expires"]
        if t["aud"] != aud:
            return "audience", t["resource"]
        return "ok", None


# ---------------------------------------------------------------------------
# Identity provider errors (AADSTS shape, as in the recorded invalid_client answer)
# ---------------------------------------------------------------------------

def aad_error(status, error, code, message, headers):
    ts = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    trace = str(uuid.uuid4())
    corr = headers.get("client-request-id") or str(uuid.uuid4())
    body = {"error": error,
            "error_description": f"AADSTS{code}: {message}\r\nTrace ID: {trace}\r\n"
                                 f"Correlation ID: {corr}\r\nTimestamp: {ts}",
            "error_codes": [code], "timestamp": ts, "trace_id": trace, "correlation_id": corr,
            "error_uri": f"https://login.microsoftonline.com/error?code={code}"}
    return json_reply(status, body, NO_CACHE + echo_request_id(headers))


def echo_request_id(headers):
    rid = headers.get("client-request-id")
    return [("client-request-id", rid)] if rid else []


class Fail(Exception):
    def __init__(self, reply):
        super().__init__(reply.status)
        self.reply = reply


def fail(status, error, code, message, headers):
    raise Fail(aad_error(status, error, code, message, headers))


def missing(name, headers):
    fail(400, "invalid_request", 900144,
         f"The request body must contain the following parameter: '{name}'.", headers)


def bad_secret(headers):
    # Exactly the body of the 401 in recorded/py-monitor-query_test_exceptions...
    # fatal_exception.json (app id included); timestamp, trace and correlation ids are fresh.
    fail(401, "invalid_client", 7000215,
         "Invalid client secret provided. Ensure the secret being sent in the request is the "
         "client secret value, not the client secret ID, for a secret added to app "
         "'00000000-0000-0000-0000-000000000000'.", headers)


def bad_assertion(reason, headers, code=700027):
    text = {700027: "Client assertion failed signature validation.",
            700021: "Client assertion certificate thumbprint does not match a certificate "
                    "registered for the application.",
            700024: "Client assertion is not within its valid time range."}[code]
    fail(401, "invalid_client", code, f"{text} [Reason - {reason}]", headers)


# ---------------------------------------------------------------------------
# Client authentication
# ---------------------------------------------------------------------------

def decode_jwt(text):
    parts = text.split(".")
    if len(parts) != 3:
        raise ValueError("not a JWT")
    header, claims = (json.loads(b64url_decode(p)) for p in parts[:2])
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise ValueError("not a JWT")
    return parts, header, claims


def verify_signature(pubkey, data, signature):
    with tempfile.TemporaryDirectory(prefix="la-idp-") as tmp:
        tmp = Path(tmp)
        (tmp / "pub.pem").write_bytes(pubkey)
        (tmp / "data").write_bytes(data)
        (tmp / "sig").write_bytes(signature)
        out = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(tmp / "pub.pem"),
                              "-signature", str(tmp / "sig"), str(tmp / "data")],
                             capture_output=True, timeout=10)
    return out.returncode == 0


def check_times(claims, headers):
    now = time.time()
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if not isinstance(exp, (int, float)) or isinstance(exp, bool):
        bad_assertion("the assertion has no numeric 'exp' claim", headers)
    if exp <= now - SKEW:
        bad_assertion(f"Current time: {utc_stamp(now)}, expiry time of assertion "
                      f"{utc_stamp(exp)}.", headers, 700024)
    if nbf is not None and (not isinstance(nbf, (int, float)) or nbf > now + SKEW):
        bad_assertion(f"Current time: {utc_stamp(now)}, assertion valid from "
                      f"{nbf if not isinstance(nbf, (int, float)) else utc_stamp(nbf)}.",
                      headers, 700024)


def check_cert_assertion(client_id, assertion, audience, headers):
    with STATE.lock:
        certs = list(STATE.certs.get(client_id, ()))
    if not certs:
        bad_assertion(f"The key was not found: no certificate is registered for '{client_id}' "
                      f"(start the server with --client-cert {client_id}=PEM)", headers)
    try:
        parts, header, claims = decode_jwt(assertion)
        signature = b64url_decode(parts[2])
    except (ValueError, UnicodeDecodeError, TypeError):
        bad_assertion("the assertion is not a well-formed JWT", headers)
    if header.get("alg") != "RS256":
        bad_assertion(f"unsupported alg {header.get('alg')!r}, RS256 expected", headers)
    if "x5t#S256" in header:
        kind = "x5t#S256"
    elif "x5t" in header:
        kind = "x5t"
    else:
        bad_assertion("the header has neither 'x5t#S256' nor 'x5t'", headers, 700021)
    thumb = str(header[kind]).rstrip("=")
    cert = next((c for c in certs if c[kind] == thumb), None)
    if cert is None:
        bad_assertion(f"The key was not found., Thumbprint of key used by client: '{thumb}' "
                      f"({kind})", headers, 700021)
    if not verify_signature(cert["pubkey"], (parts[0] + "." + parts[1]).encode("ascii"),
                            signature):
        bad_assertion("the signature does not verify with the registered certificate", headers)
    aud = claims.get("aud")
    if aud != audience and not (isinstance(aud, list) and audience in aud):
        bad_assertion(f"the 'aud' claim {aud!r} is not the token endpoint '{audience}'", headers)
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        bad_assertion(f"'iss' and 'sub' must both be the client id '{client_id}'", headers)
    check_times(claims, headers)
    if not claims.get("jti"):
        bad_assertion("the assertion has no 'jti' claim", headers)


def check_federated(assertion, headers):
    if assertion == TEST_FEDERATED_TOKEN:
        return
    issuer = ""
    try:
        _, _, claims = decode_jwt(assertion)
        issuer = str(claims.get("iss", ""))
        exp = claims.get("exp")
        if isinstance(exp, (int, float)) and exp <= time.time() - SKEW:
            fail(401, "invalid_client", 700024,
                 "Client assertion is not within its valid time range.", headers)
    except (ValueError, UnicodeDecodeError, TypeError):
        pass
    fail(401, "invalid_client", 700211,
         f"No matching federated identity record found for presented assertion issuer "
         f"'{issuer}'. Please check your federated identity credential Subject, Audience and "
         f"Issuer against the presented assertion.", headers)


def known_client(client_id):
    with STATE.lock:
        return client_id in (TEST_CLIENT, TEST_CERT_CLIENT, TEST_WORKLOAD_CLIENT) \
            or client_id in STATE.certs


def authenticate_client(client_id, secret, form, audience, headers):
    assertion = form.get("client_assertion")
    if assertion:
        atype = form.get("client_assertion_type")
        if not atype:
            missing("client_assertion_type", headers)
        if atype != JWT_BEARER:
            fail(400, "invalid_request", 50027,
                 f"Invalid JWT token. client_assertion_type '{atype}' is not supported.", headers)
        if client_id == TEST_WORKLOAD_CLIENT:
            return check_federated(assertion, headers)
        return check_cert_assertion(client_id, assertion, audience, headers)
    if secret:
        if client_id == TEST_CLIENT and secret == TEST_SECRET:
            return
        bad_secret(headers)
    fail(401, "invalid_client", 7000218, "The request body must contain the following "
         "parameter: 'client_assertion' or 'client_secret'.", headers)


# ---------------------------------------------------------------------------
# Token endpoints (v2.0 and v1)
# ---------------------------------------------------------------------------

def lookup_resource(resource, tenant, headers):
    aud = RESOURCES.get(resource.rstrip("/").lower())
    if aud is None:
        fail(400, "invalid_resource", 500011,
             f"The resource principal named {resource} was not found in the tenant named "
             f"{tenant}. This can happen if the application has not been installed by the "
             f"administrator of the tenant or consented to by any user in the tenant. You "
             f"might have sent your authentication request to the wrong tenant.", headers)
    return aud


def resolve_scope(scope, grant, tenant, headers):
    """-> (aud, resource, scopes echoed)"""
    scopes = scope.split()
    invalid = lambda: fail(400, "invalid_scope", 70011,
                           "The provided request must include a 'scope' input parameter. The "
                           f"provided value for the input parameter 'scope' is not valid. The "
                           f"scope {scope} is not valid.", headers)
    if grant == "client_credentials":
        if len(scopes) != 1:
            invalid()
        if not scopes[0].endswith("/.default"):
            fail(400, "invalid_scope", 1002012,
                 f"The provided value for scope {scopes[0]} is not valid. Client credential "
                 "flows must have a scope value with /.default suffixed to the resource "
                 "identifier (application ID URI).", headers)
        resource = scopes[0][:-len("/.default")]
        return lookup_resource(resource, tenant, headers), resource, scopes
    wanted = [s for s in scopes if s.lower() not in OIDC_SCOPES]
    if not wanted or any("://" not in s or s.count("/") < 3 for s in wanted):
        invalid()
    resources = {s.rsplit("/", 1)[0].rstrip("/").lower() for s in wanted}
    if len(resources) > 1:
        fail(400, "invalid_scope", 28000,
             "Provided value for the input parameter scope is not valid because it contains "
             f"more than one resource. Scope {scope} is not valid.", headers)
    resource = wanted[0].rsplit("/", 1)[0]
    return lookup_resource(resource, tenant, headers), resource, wanted


def redeem_code(code, client_id, redirect_uri, headers):
    with STATE.lock:
        c = STATE.codes.get(code)
        if c is None:
            problem = (9002313, "Invalid request. Request is malformed or invalid.")
        elif c["client_id"] != client_id:
            problem = (70000, "The provided value for the 'code' parameter is not valid. The "
                              "code was issued to a different client.")
        elif c["used"]:
            problem = (54005, "OAuth2 Authorization code was already redeemed, please retry "
                              "with a new valid code or use an existing refresh token.")
        elif redirect_uri != c["redirect_uri"]:
            problem = (500112, f"The reply address '{redirect_uri}' does not match the reply "
                               f"address '{c['redirect_uri']}' provided when requesting "
                               "Authorization code.")
        else:
            c["used"], problem = True, None
    if problem:
        fail(400, "invalid_grant", problem[0], problem[1], headers)


def redeem_refresh(token, client_id, headers):
    with STATE.lock:
        r = STATE.refresh.get(token)
        if r is None:
            problem = (9002313, "Invalid request. Request is malformed or invalid.")
        elif r["client_id"] != client_id:
            problem = (70000, "Provided grant is invalid or malformed: the refresh token was "
                              "issued to a different client.")
        elif r["used"]:
            problem = (70008, "The refresh token has expired or was revoked. Send a new "
                              "interactive authorization request for this user and resource.")
        else:
            r["used"], problem = True, None
    if problem:
        fail(400, "invalid_grant", problem[0], problem[1], headers)


def parse_form(body, headers):
    ctype = (headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        return {}, {}
    raw = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    shown = {k: v[0] if len(v) == 1 else v for k, v in raw.items()}
    return {k: v[0] for k, v in raw.items() if v[0] != ""}, shown


def token_endpoint(version, tenant, method, path, form, headers):
    """The grant; raises Fail with the identity provider's error answer."""
    if method != "POST":
        fail(400, "invalid_request", 900561, "The endpoint only accepts POST, OPTIONS "
             f"requests. Received a {method} request.", headers)
    multi = tenant.lower() in ("common", "organizations")
    if tenant.lower() != TEST_TENANT.lower() and not multi:
        fail(400, "invalid_request", 90002,
             f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID "
             "and are signing into the correct cloud. Check with your subscription "
             "administrator, this may happen if there are no active subscriptions for the "
             "tenant.", headers)
    grant = form.get("grant_type") or missing("grant_type", headers)
    if grant not in GRANTS:
        fail(400, "unsupported_grant_type", 70003,
             f"The app requested an unsupported grant type '{grant}'.", headers)
    if multi and grant == "client_credentials":
        fail(400, "invalid_request", 50059, "No tenant-identifying information found in either "
             "the request or implied by any provided credentials.", headers)
    client_id, secret = form.get("client_id"), form.get("client_secret")
    scheme, _, cred = (headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "basic":  # client_secret_basic
        try:
            user, _, password = base64.b64decode(cred.strip()).decode("utf-8").partition(":")
            client_id, secret = client_id or unquote(user), secret or unquote(password)
        except (ValueError, UnicodeDecodeError):
            pass
    if not client_id:
        missing("client_id", headers)
    param = "scope" if version == 2 else "resource"
    if not form.get(param):
        missing(param, headers)
    for name in {"authorization_code": ("code", "redirect_uri"),
                 "refresh_token": ("refresh_token",)}.get(grant, ()):
        if not form.get(name):
            missing(name, headers)
    if not known_client(client_id):
        fail(400, "unauthorized_client", 700016,
             f"Application with identifier '{client_id}' was not found in the directory "
             f"'{tenant}'. This can happen if the application has not been installed by the "
             "administrator of the tenant or consented to by any user in the tenant. You may "
             "have sent your authentication request to the wrong tenant.", headers)
    authenticate_client(client_id, secret, form,
                        f"http://{headers.get('host', '')}{path}", headers)
    if version == 2:
        aud, resource, scopes = resolve_scope(form["scope"], grant, tenant, headers)
    else:
        resource = form["resource"]
        aud, scopes = lookup_resource(resource, tenant, headers), None
    if grant == "authorization_code":
        redeem_code(form["code"], client_id, form["redirect_uri"], headers)
    elif grant == "refresh_token":
        redeem_refresh(form["refresh_token"], client_id, headers)
    token, expires_in, expires_on, now, refresh_in = issue(aud, resource)
    if version == 2:
        out = {"token_type": "Bearer"}
        if grant != "client_credentials":
            out["scope"] = " ".join(scopes)
        out.update(expires_in=expires_in, ext_expires_in=expires_in)
        if refresh_in is not None:
            out["refresh_in"] = refresh_in
        out["access_token"] = token
    else:
        out = {"token_type": "Bearer", "expires_in": str(expires_in),
               "ext_expires_in": str(expires_in), "expires_on": str(expires_on),
               "not_before": str(now), "resource": resource}
        if refresh_in is not None:
            out["refresh_in"] = str(refresh_in)
        out["access_token"] = token
    if grant != "client_credentials":
        out["refresh_token"] = new_refresh_token(client_id)
    return json_reply(200, out, NO_CACHE + echo_request_id(headers))


# ---------------------------------------------------------------------------
# Managed identity: IMDS and App Service
# ---------------------------------------------------------------------------

def pick_identity(params, names):
    """-> (client_id or None if unknown, number of selectors given)"""
    given = [(n, params[n]) for n in names if params.get(n)]
    if not given:
        return TEST_MI_SYSTEM_CLIENT, 0
    n, v = given[0]
    if (n == names[0] and v == TEST_MI_CLIENT) or (n == names[1] and v == TEST_MI_OBJECT) or \
            (n in names[2:] and v.lower() == TEST_MI_RESOURCE_ID.lower()):
        return TEST_MI_CLIENT, len(given)
    return None, len(given)


def imds(method, params, headers):
    err = lambda code, desc: json_reply(400, {"error": code, "error_description": desc})
    if method != "GET":
        return json_reply(405, {"error": "invalid_request",
                                "error_description": "Only GET is supported"})
    if headers.get("metadata") != "true":
        return err("invalid_request", "Required metadata header not specified")
    if not params.get("api-version"):
        return err("invalid_request", "Required query variable 'api-version' is missing")
    resource = params.get("resource")
    if not resource:
        return err("invalid_request", "Required audience parameter not specified")
    client_id, n = pick_identity(params, ("client_id", "object_id", "msi_res_id", "mi_res_id"))
    if n > 1:
        return err("invalid_request", "Only one of client_id, object_id or msi_res_id may be "
                                      "specified")
    if client_id is None:
        return err("invalid_request", "Identity not found")
    aud = RESOURCES.get(resource.rstrip("/").lower())
    if aud is None:
        return err("invalid_resource", f"AADSTS500011: The resource principal named {resource} "
                                       f"was not found in the tenant named {TEST_TENANT}.")
    token, expires_in, expires_on, now, refresh_in = issue(aud, resource)
    out = {"access_token": token, "client_id": client_id, "expires_in": str(expires_in),
           "expires_on": str(expires_on), "ext_expires_in": str(expires_in),
           "not_before": str(now), "resource": resource, "token_type": "Bearer"}
    if refresh_in is not None:
        out["refresh_in"] = str(refresh_in)
    return json_reply(200, out)


def app_service(method, params, headers):
    err = lambda status, msg, **kw: json_reply(status, {"statusCode": status, "message": msg,
                                                        **kw})
    if method != "GET":
        return err(405, "The requested resource does not support http method '%s'." % method)
    secret = headers.get("x-identity-header")
    if secret is None:
        return err(400, "The X-IDENTITY-HEADER header is required")
    if secret != TEST_IDENTITY_HEADER:
        return err(401, "Unauthorized. The X-IDENTITY-HEADER value is not valid.")
    version = params.get("api-version")
    if version != "2019-08-01":
        return err(400, f"The api-version '{version}' is not supported; use 2019-08-01")
    resource = params.get("resource")
    if not resource:
        return err(400, "Required query parameter 'resource' is missing")
    client_id, n = pick_identity(params, ("client_id", "principal_id", "mi_res_id"))
    if client_id is None or n > 1:
        return err(400, "Unable to load the proper Managed Identity.",
                   correlationId=str(uuid.uuid4()))
    aud = RESOURCES.get(resource.rstrip("/").lower())
    if aud is None:
        return err(400, f"AADSTS500011: The resource principal named {resource} was not found "
                        f"in the tenant named {TEST_TENANT}.", correlationId=str(uuid.uuid4()))
    token, expires_in, expires_on, _, refresh_in = issue(aud, resource)
    out = {"access_token": token, "expires_on": str(expires_on), "resource": resource,
           "token_type": "Bearer", "client_id": client_id}
    if refresh_in is not None:
        out["refresh_in"] = str(refresh_in)
    return json_reply(200, out)


# ---------------------------------------------------------------------------
# Routing (called by la_server for every non-/_test request)
# ---------------------------------------------------------------------------

TOKEN_RE = re.compile(r"/([^/]+)/oauth2/(v2\.0/)?(token|authorize)")


def handle(method, target, headers, body):
    """-> Reply, or None when the path is not the identity provider's.
    headers: lower-cased names."""
    path, _, qs = target.partition("?")
    m = TOKEN_RE.fullmatch(path)
    if m and m.group(3) == "authorize":
        return authorize(unquote(m.group(1)), qs)
    if not m and path not in ("/metadata/identity/oauth2/token", "/msi/token"):
        return None
    if m:
        form, shown = parse_form(body, headers)
    else:
        raw = parse_qs(qs, keep_blank_values=True)
        form = {k: v[0] for k, v in raw.items()}
        shown = {k: v[0] if len(v) == 1 else v for k, v in raw.items()}
    with STATE.lock:
        STATE.token_requests += 1
        delay = STATE.token_delay_ms / 1000
        echoing = STATE.echo_next > 0
        if echoing:
            STATE.echo_next -= 1
            echo_status = STATE.echo_status
        failing = not echoing and STATE.fail_next > 0
        if failing:
            STATE.fail_next -= 1
            status, retry_after = STATE.fail_status, STATE.fail_retry_after
    if delay:
        time.sleep(delay)
    if echoing:
        reply = echo_answer(echo_status, method, target, body, form, headers)
    elif failing:
        extra = [("Retry-After", str(retry_after))] if retry_after is not None else []
        reply = aad_error(status, "temporarily_unavailable" if status in (429, 503)
                          else "server_error", 50000, "There was an error issuing a token or "
                          "an issue with our sign-in service. (fail_next)", headers)
        reply = reply._replace(headers=reply.headers + extra)
    elif m:
        try:
            reply = token_endpoint(2 if m.group(2) else 1, unquote(m.group(1)), method, path,
                                   form, headers)
        except Fail as f:
            reply = f.reply
    elif path == "/msi/token":
        reply = app_service(method, form, headers)
    else:
        reply = imds(method, form, headers)
    with STATE.lock:
        STATE.log.append({"method": method, "path": target, "grant_type": form.get("grant_type"),
                          "form": shown, "headers": headers, "status": reply.status})
    return reply


ECHOED_SECRETS = ("client_secret", "client_assertion", "refresh_token", "code")


def echo_answer(status, method, target, body, form, headers):
    """A broken identity endpoint that quotes the request (and its secrets) back."""
    secret = next((form[k] for k in ECHOED_SECRETS if form.get(k)),
                  headers.get("x-identity-header") or "none")
    quoted = [f"{k}={v}" for k, v in form.items()]
    quoted += [f"{k}: {v}" for k, v in headers.items()]
    description = (f"AADSTS900000: cannot process {method} {target} with the form "
                   f"{body.decode('utf-8', 'replace')}; parameters: {'; '.join(quoted)}")
    return json_reply(status, {"error": secret, "error_description": description,
                               "error_codes": [900000], "correlation_id": secret,
                               "trace_id": str(uuid.uuid4())})


def authorize(tenant, qs):
    if tenant.lower() not in (TEST_TENANT.lower(), "common", "organizations", "consumers"):
        return Reply(400, f"AADSTS90002: Tenant '{tenant}' not found.\n".encode("utf-8"),
                     [("Content-Type", "text/plain; charset=utf-8")])
    raw = parse_qs(qs, keep_blank_values=True)
    params = {k: v[0] if len(v) == 1 else v for k, v in raw.items()}
    return Reply(200, b"authorize endpoint\n" + dumps(params) + b"\n",
                 [("Content-Type", "text/plain; charset=utf-8")])


# ---------------------------------------------------------------------------
# Azure Resource Manager query path
# ---------------------------------------------------------------------------

def arm_error(status, code, message, headers=()):
    return json_reply(status, {"error": {"code": code, "message": message}}, headers)


def arm_auth(authorization):
    """Resource Manager's bearer token check -> None when admitted, else the 401 Reply."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if not authorization:
        why = "Authentication failed. The 'Authorization' header is missing."
    elif scheme.lower() != "bearer" or not token:
        why = "Authentication failed. The 'Authorization' header is provided in an invalid format."
    else:
        status, detail = check_token(token, ARM)
        if status == "ok":
            why = None
        elif status == "expired":
            why = (f"The access token expiry UTC time '{utc_stamp(detail)}' is earlier than "
                   f"current UTC time '{utc_stamp(time.time())}'.")
        elif status == "audience":
            why = (f"The access token has been obtained for wrong audience or resource "
                   f"'{detail}'. It should exactly match with one of the allowed audiences "
                   "'https://management.core.windows.net/','https://management.core.windows"
                   ".net','https://management.azure.com/','https://management.azure.com'.")
        else:
            why = {"unknown": "The access token is invalid.",
                   "revoked": "The access token has been revoked."}[status]
    if why:
        return arm_error(401, "AuthenticationFailed", why, [(
            "WWW-Authenticate", 'Bearer authorization_uri="https://login.windows.net/", '
                                'error="invalid_token", error_description="' + why.replace('"', "'")
                                + '"')])
    return None


def arm_check(method, match, params, authorization):
    """match: ARM_QUERY_RE match. -> None when the call may be served, else the error Reply."""
    if method != "POST":
        return arm_error(405, "MethodNotAllowed",
                         f"The requested method {method} is not allowed on this path.",
                         [("Allow", "POST")])
    refused = arm_auth(authorization)
    if refused:
        return refused
    version = (params.get("api-version") or [None])[0]
    if version != ARM_API_VERSION:
        return arm_error(400, "InvalidApiVersionParameter",
                         "The api-version query parameter (?api-version=) is required for all "
                         "requests." if not version else
                         f"The api-version '{version}' is invalid. The supported versions are "
                         f"'{ARM_API_VERSION}'.")
    group, name = unquote(match.group(2)), unquote(match.group(3))
    if name.lower() != ARM_WORKSPACE:
        return arm_error(404, "ResourceNotFound",
                         f"The Resource 'Microsoft.OperationalInsights/workspaces/{name}' under "
                         f"resource group '{group}' was not found. For more details please go to "
                         "https://aka.ms/ARMResourceNotFoundFix")
    return None


def not_found(group, name):
    return arm_error(404, "ResourceNotFound",
                     f"The Resource 'Microsoft.OperationalInsights/workspaces/{name}' under "
                     f"resource group '{group}' was not found. For more details please go to "
                     "https://aka.ms/ARMResourceNotFoundFix")


# The fields of a workspace as Resource Manager's GET shows it (api-version 2022-10-01), after
# the example spec/fixtures/wire/WorkspacesSubscriptionList.json (value[0]; azure-rest-api-specs,
# MIT, see spec/fixtures/wire/PROVENANCE.md), with this server's ids.
def workspace_shape(subscription, group, name, customer_id):
    props = {"provisioningState": "Succeeded", "sku": {"name": "PerGB2018"},
             "retentionInDays": 30, "publicNetworkAccessForQuery": "Enabled",
             "publicNetworkAccessForIngestion": "Enabled"}
    if customer_id is not None:
        props = {"customerId": customer_id, **props}
    return {"properties": props,
            "id": (f"/subscriptions/{subscription}/resourcegroups/{group.lower()}/providers/"
                   f"microsoft.operationalinsights/workspaces/{name.lower()}"),
            "name": name, "type": "Microsoft.OperationalInsights/workspaces",
            "location": "westeurope", "tags": {}}


def arm_workspace(method, match, params, authorization):
    """GET of a workspace (match: ARM_WORKSPACE_RE match) -> Reply."""
    if method != "GET":
        return arm_error(405, "MethodNotAllowed",
                         f"The requested method {method} is not allowed on this path.",
                         [("Allow", "GET")])
    refused = arm_auth(authorization)
    if refused:
        return refused
    version = (params.get("api-version") or [None])[0]
    if version != WORKSPACE_API_VERSION:
        return arm_error(400, "InvalidApiVersionParameter",
                         "The api-version query parameter (?api-version=) is required for all "
                         "requests." if not version else
                         f"The api-version '{version}' is invalid. The supported versions are "
                         f"'{WORKSPACE_API_VERSION}'.")
    subscription, group, name = (unquote(match.group(i)) for i in (1, 2, 3))
    if name == TEST_FORBIDDEN_WORKSPACE:
        return arm_error(403, "AuthorizationFailed",
                         "The client 'TEST_CLIENT' does not have authorization to perform action "
                         "'Microsoft.OperationalInsights/workspaces/read' over scope '/subscriptions/"
                         f"{subscription}/resourceGroups/{group}/providers/Microsoft."
                         f"OperationalInsights/workspaces/{name}' or the scope is invalid.")
    customer_id = {ARM_WORKSPACE: DEMO_CUSTOMER_ID, TEST_NO_CUSTOMER_ID: None,
                   TEST_BAD_CUSTOMER_ID: "../DEMO_WORKSPACE"}
    if name.lower() not in (k.lower() for k in customer_id):
        return not_found(group, name)
    key = next(k for k in customer_id if k.lower() == name.lower())
    return json_reply(200, workspace_shape(subscription, group, name, customer_id[key]))


# ---------------------------------------------------------------------------
# Test control
# ---------------------------------------------------------------------------

def control(method, path, body):
    """/_test/identity and /_test/revoke -> Reply; None for other paths."""
    if path not in ("/_test/identity", "/_test/revoke"):
        return None
    if path == "/_test/revoke":
        if method != "POST":
            return json_reply(405, {"error": "POST only"}, [("Allow", "POST")])
        with STATE.lock:
            n = 0
            for t in STATE.tokens.values():
                n += not t["revoked"]
                t["revoked"] = True
        return json_reply(200, {"revoked": n})
    if method == "POST":
        try:
            req = json.loads(body.decode("utf-8") or "{}")
            if not isinstance(req, dict):
                raise ValueError("a JSON object is expected")
            apply_settings(req)
        except (ValueError, UnicodeDecodeError, TypeError) as e:
            return json_reply(400, {"error": str(e)})
    elif method != "GET":
        return json_reply(405, {"error": "GET or POST"}, [("Allow", "GET, POST")])
    with STATE.lock:
        return json_reply(200, {"token_requests": STATE.token_requests, "issued": STATE.issued,
                                "expires_in": STATE.expires_in, "refresh_in": STATE.refresh_in,
                                "fail_next": STATE.fail_next, "echo_next": STATE.echo_next,
                                "token_delay_ms": STATE.token_delay_ms,
                                "requests": list(STATE.log)})


def apply_settings(req):
    def number(key, none_ok=False):
        v = req[key]
        if (v is None and none_ok) or (isinstance(v, int) and not isinstance(v, bool)):
            return v
        raise ValueError(f"'{key}' must be an integer" + (" or null" if none_ok else ""))
    if req.get("reset"):
        reset()
    for pem_client, pem in (req.get("client_certs") or {}).items():
        load_certificate(pem_client, str(pem))
    with STATE.lock:
        if "expires_in" in req:
            STATE.expires_in = number("expires_in")
        if "refresh_in" in req:
            STATE.refresh_in = number("refresh_in", True)
        if "token_delay_ms" in req:
            STATE.token_delay_ms = max(0, number("token_delay_ms"))
        if "echo_next" in req:
            STATE.echo_next = max(0, number("echo_next"))
            STATE.echo_status = number("status") if "status" in req else 400
        if "fail_next" in req:
            STATE.fail_next = max(0, number("fail_next"))
            STATE.fail_status = number("status") if "status" in req else 500
            STATE.fail_retry_after = number("retry_after", True) if "retry_after" in req \
                else None
