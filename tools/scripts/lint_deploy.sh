#!/usr/bin/env bash
# Offline checks of the deployment files; exits non-zero if any check fails.
#
#   tools/scripts/lint_deploy.sh            (make lint-deploy creates .venv-lint first)
#
# 1. both kustomize overlays render (kustomize, or kubectl's built-in kustomize), and so does
#    the CloudNativePG example (k8s/examples/cloudnative-pg), checked like them below
# 2. the rendered manifests validate against the Kubernetes schemas (strict);
#    the custom resources, which kubernetes-validate does not know (the Prometheus
#    Operator's PodMonitor and PrometheusRule, CloudNativePG's Cluster, Pooler and
#    ScheduledBackup), against the strict schemas of deploy/schemas/ instead
#    (tools/scripts/check_monitoring.py)
# 2b. the alert rules: `promtool check rules`, and their unit tests
#    (tests/deploy/alerts_test.yaml) with `promtool test rules`; promtool comes
#    from Debian's prometheus package (make promtool installs it)
# 3. checkov (--skip-download) passes on the Dockerfile and the rendered manifests;
#    every skipped check is justified in a checkov.io/skipN annotation on the
#    resource it concerns (k8s/), never by a blanket --skip-check here
# 4. hadolint on the Dockerfile, shellcheck on the shell scripts
# 5. yamllint on every YAML file of the repository (.yamllint.yaml)
# 6. the Compose files against the Compose specification's JSON schema, plus
#    the cross-references `docker compose config` checks
# 7. `manage.py check --deploy` with production settings (DJANGO_DEBUG=False)
#
# Environment: LINT_VENV (default .venv-lint), APP_PYTHON (default
# .venv/bin/python), PROMTOOL (default: promtool on PATH), LINT_OUT (where rendered manifests go; default a temp dir),
# K8S_VERSIONS (schema versions to validate against; default "1.30 1.37").
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root" || exit 2

lint_venv="${LINT_VENV:-$root/.venv-lint}"
bin="$lint_venv/bin"
app_python="${APP_PYTHON:-$root/.venv/bin/python}"
k8s_versions="${K8S_VERSIONS:-1.30 1.37}"
overlays=(dev prod)

if [[ -n "${LINT_OUT:-}" ]]; then
    out="$LINT_OUT"
    mkdir -p "$out"
else
    out="$(mktemp -d)"
    trap 'rm -rf "$out"' EXIT
fi
rendered="$out/rendered"
core="$out/core"
rules="$out/rules"
mkdir -p "$rendered" "$core" "$rules"
promtool_bin="${PROMTOOL:-$(command -v promtool || true)}"

failures=()
step() {
    local name="$1"
    shift
    echo "==> $name"
    if "$@"; then
        echo "    ok: $name"
    else
        echo "    FAILED: $name" >&2
        failures+=("$name")
    fi
}

# --- tools ---------------------------------------------------------------
missing=()
for tool in kubernetes-validate checkov hadolint shellcheck yamllint check-jsonschema python; do
    [[ -x "$bin/$tool" ]] || missing+=("$tool")
done
[[ -n "$promtool_bin" && -x "$promtool_bin" ]] || missing+=("promtool (Debian package prometheus: make promtool)")
if ((${#missing[@]})); then
    echo "lint-deploy: missing in $lint_venv: ${missing[*]}" >&2
    echo "lint-deploy: create it with: make lint-deploy (or python3 -m venv .venv-lint &&" \
        ".venv-lint/bin/pip install --require-hashes -r requirements/lint.lock.txt)" >&2
    exit 2
fi

if command -v kustomize >/dev/null 2>&1; then
    render() { kustomize build "$1"; }
    renderer="$(kustomize version 2>/dev/null | head -n 1)"
elif command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then
    render() { kubectl kustomize "$1"; }
    renderer="kubectl kustomize ($(kubectl version --client 2>/dev/null | grep -i kustomize | head -n 1))"
else
    echo "lint-deploy: neither kustomize nor kubectl (with kustomize) is on PATH" >&2
    exit 2
fi
echo "lint-deploy: rendering with $renderer; output in $out"

# --- 1. render -------------------------------------------------------------
render_overlay() {
    local overlay="$1"
    render "k8s/overlays/$overlay" >"$rendered/$overlay.yaml" || return 1
    # No Secret may come out of the repository: it is only a template.
    if grep -qE '^kind: Secret$' "$rendered/$overlay.yaml"; then
        echo "    $overlay renders a Secret; secrets are created out of band" >&2
        return 1
    fi
    [[ -s "$rendered/$overlay.yaml" ]]
}
for overlay in "${overlays[@]}"; do
    step "render k8s/overlays/$overlay" render_overlay "$overlay"
done
render_example() {
    render "k8s/examples/$1" >"$rendered/example-$1.yaml" && [[ -s "$rendered/example-$1.yaml" ]]
}
step "render k8s/examples/cloudnative-pg" render_example cloudnative-pg

# --- 2. Kubernetes schemas -----------------------------------------------------
# The custom resources are validated against deploy/schemas/ and set aside; the
# built-in kinds go on to kubernetes-validate.
for overlay in "${overlays[@]}" example-cloudnative-pg; do
    step "custom resources of $overlay (deploy/schemas)" \
        "$bin/python" tools/scripts/check_monitoring.py "$rendered/$overlay.yaml" "$core/$overlay.yaml" "$rules"
done
core_files=()
for file in "$core"/*.yaml; do
    # The example holds custom resources only: nothing is left for kubernetes-validate.
    [[ "$(grep -c '^kind:' "$file")" -gt 0 ]] && core_files+=("$file")
done
for version in $k8s_versions; do
    step "kubernetes-validate --strict (Kubernetes $version)" \
        "$bin/kubernetes-validate" --strict --quiet -k "$version" "${core_files[@]}" k8s/secret.template.yaml
done

# --- 2b. Alert rules ------------------------------------------------------------------
check_rules() {
    local files=("$rules"/*/*.rules.yaml)
    [[ -e "${files[0]}" ]] || { echo "    no PrometheusRule rendered" >&2; return 1; }
    "$promtool_bin" check rules "${files[@]}"
}
test_rules() {
    # The tests name the file they test: the prod overlay's rules, beside them.
    cp tests/deploy/alerts_test.yaml "$rules/prod/" && (cd "$rules/prod" && "$promtool_bin" test rules alerts_test.yaml)
}
step "promtool check rules" check_rules
step "promtool test rules (tests/deploy/alerts_test.yaml)" test_rules

# --- 3. checkov --------------------------------------------------------------------
step "checkov kubernetes (rendered overlays)" \
    "$bin/checkov" --skip-download --quiet --compact --framework kubernetes -d "$rendered"
step "checkov dockerfile" \
    "$bin/checkov" --skip-download --quiet --compact --framework dockerfile -f Dockerfile

# --- 4. hadolint, shellcheck -------------------------------------------------------
step "hadolint Dockerfile" "$bin/hadolint" Dockerfile
step "shellcheck" "$bin/shellcheck" docker/entrypoint.sh k8s/deploy.sh tools/scripts/lint_deploy.sh

# --- 5. yamllint -------------------------------------------------------------------
step "yamllint (all YAML files)" "$bin/yamllint" --strict -c .yamllint.yaml .

# --- 6. Compose --------------------------------------------------------------------
compose_files=(docker-compose.yml docker-compose.test.yml)
step "compose specification schema" \
    "$bin/check-jsonschema" --builtin-schema vendor.compose-spec "${compose_files[@]}"
step "compose cross-references" "$bin/python" tools/scripts/check_compose.py "${compose_files[@]}"

# --- 7. Django production settings ----------------------------------------------------
django_check_deploy() {
    if [[ ! -x "$app_python" ]]; then
        echo "    no application interpreter at $app_python (make test creates .venv)" >&2
        return 1
    fi
    local key
    key="$("$app_python" -c 'import secrets; print(secrets.token_urlsafe(50))')"
    env DJANGO_SETTINGS_MODULE=config.settings \
        DJANGO_DEBUG=False \
        DJANGO_SECRET_KEY="$key" \
        DJANGO_ALLOWED_HOSTS=lending.library.example.com \
        SECURE_SSL_REDIRECT=True \
        LOG_FORMAT=json \
        "$app_python" manage.py check --deploy --fail-level WARNING
}
step "manage.py check --deploy (production settings)" django_check_deploy

echo
if ((${#failures[@]})); then
    echo "lint-deploy: ${#failures[@]} check(s) failed:" >&2
    printf '  - %s\n' "${failures[@]}" >&2
    exit 1
fi
echo "lint-deploy: all checks passed"
