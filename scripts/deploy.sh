#!/usr/bin/env bash
# Deploy the OncoGraph API image (Dockerfile) to Hugging Face Spaces or Google Cloud Run.
#
#   scripts/deploy.sh [--dry-run] hf --space OWNER/NAME [--weights "qwen2.5-1.5b minilm"]
#   scripts/deploy.sh [--dry-run] cloudrun --project PROJECT [--region europe-west1]
#                     [--service oncograph] [--repo oncograph] [--api-key-secret NAME]
#
# Both build the committed tree (git archive HEAD), so what runs is what was reviewed; the
# image's weights and disease vocabulary are fetched at build time by scripts/setup.sh.
#   hf:        needs HF_TOKEN (write) in the environment; creates the Space (Docker SDK) if
#              missing and uploads the tree with a Space README header (app_port 8000).
#              cpu-basic (2 vCPU, 16 GB) runs the default 1.5B model.
#   cloudrun:  needs an authenticated gcloud; builds with Cloud Build into Artifact Registry
#              and deploys 2 vCPU / 8 GiB instances that only take traffic once the models
#              are loaded (ONCOGRAPH_API_WAIT_READY=1), private unless you grant run.invoker.
# --dry-run prints every command and runs none.
set -euo pipefail
cd "$(dirname "$0")/.."

DRY_RUN=0
if [[ ${1:-} == --dry-run ]]; then DRY_RUN=1; shift; fi
TARGET=${1:-}
shift || true

SPACE="" PROJECT="" REGION="europe-west1" SERVICE="oncograph" REPO="oncograph"
WEIGHTS="qwen2.5-1.5b minilm" KEY_SECRET=""
while (( $# )); do
  case $1 in
    --space) SPACE=$2; shift 2 ;;
    --project) PROJECT=$2; shift 2 ;;
    --region) REGION=$2; shift 2 ;;
    --service) SERVICE=$2; shift 2 ;;
    --repo) REPO=$2; shift 2 ;;
    --weights) WEIGHTS=$2; shift 2 ;;
    --api-key-secret) KEY_SECRET=$2; shift 2 ;;
    *) echo "error: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done

run() {
  printf '+'; printf ' %q' "$@"; printf '\n'
  if [[ $DRY_RUN != 1 ]]; then "$@"; fi
}

TAG=$(git rev-parse --short HEAD 2>/dev/null || echo latest)
if [[ $DRY_RUN == 1 ]]; then
  STAGE="${TMPDIR:-/tmp}/oncograph-deploy.XXXXXX"
else
  STAGE=$(mktemp -d -t oncograph-deploy.XXXXXX)
fi

stage_tree() {
  printf '+ git archive --format=tar HEAD | tar -x -C %q\n' "$STAGE"
  if [[ $DRY_RUN != 1 ]]; then git archive --format=tar HEAD | tar -x -C "$STAGE"; fi
}

case $TARGET in
  hf)
    [[ -n $SPACE ]] || { echo "error: hf needs --space OWNER/NAME" >&2; exit 2; }
    if [[ $DRY_RUN != 1 && -z ${HF_TOKEN:-} ]]; then
      echo "error: set HF_TOKEN to a write token for $SPACE" >&2; exit 2
    fi
    stage_tree
    header=$'---\ntitle: OncoGraph\nsdk: docker\napp_port: 8000\npinned: false\n---\n'
    printf '+ prepend the Space header (sdk: docker, app_port: 8000) to %q/README.md\n' "$STAGE"
    if [[ $DRY_RUN != 1 ]]; then
      { printf '%s\n' "$header"; cat "$STAGE/README.md"; } > "$STAGE/README.space.md"
      mv "$STAGE/README.space.md" "$STAGE/README.md"
      # the Space builds with the default build args; pin the weights it prepares
      sed -i "s|^ARG ONCOGRAPH_WEIGHTS=.*|ARG ONCOGRAPH_WEIGHTS=\"$WEIGHTS\"|" "$STAGE/Dockerfile"
    fi
    run .venv/bin/python -c 'import sys
from huggingface_hub import HfApi
space, folder = sys.argv[1:]
api = HfApi()
api.create_repo(space, repo_type="space", space_sdk="docker", exist_ok=True)
api.upload_folder(folder_path=folder, repo_id=space, repo_type="space",
                  commit_message="Deploy OncoGraph")
print(f"https://huggingface.co/spaces/{space}")' "$SPACE" "$STAGE"
    ;;
  cloudrun)
    [[ -n $PROJECT ]] || { echo "error: cloudrun needs --project PROJECT" >&2; exit 2; }
    IMAGE="$REGION-docker.pkg.dev/$PROJECT/$REPO/oncograph:$TAG"
    stage_tree
    if [[ $DRY_RUN == 1 ]] || ! gcloud artifacts repositories describe "$REPO" \
        --location "$REGION" --project "$PROJECT" >/dev/null 2>&1; then
      run gcloud artifacts repositories create "$REPO" --repository-format docker \
        --location "$REGION" --project "$PROJECT"
    fi
    run gcloud builds submit "$STAGE" --tag "$IMAGE" --project "$PROJECT" \
      --machine-type e2-highcpu-8 --timeout 3600s
    secret_flags=()
    if [[ -n $KEY_SECRET ]]; then secret_flags=(--set-secrets "ONCOGRAPH_API_KEY=$KEY_SECRET:latest"); fi
    run gcloud run deploy "$SERVICE" --image "$IMAGE" --project "$PROJECT" --region "$REGION" \
      --cpu 2 --memory 8Gi --port 8000 --concurrency 8 --timeout 300 \
      --min-instances 0 --max-instances 4 --cpu-boost --no-allow-unauthenticated \
      --set-env-vars ONCOGRAPH_API_WAIT_READY=1,ONCOGRAPH_API_MAX_IN_FLIGHT=8 \
      "${secret_flags[@]}"
    ;;
  *)
    echo "usage: $0 [--dry-run] hf --space OWNER/NAME | cloudrun --project PROJECT" >&2
    exit 2
    ;;
esac
