#!/bin/sh
# Makes the random secrets of a claw-approvals deployment, one file each, in deploy/secrets/ (or
# the directory given): the PostgreSQL password and the DATABASE_URL that uses it, ADMIN_TOKEN,
# METRICS_TOKEN, the signing key (an Ed25519 private JWK) and the buttons' action secret.
# An existing file is never replaced: a new signing key, action secret or database password
# would break what the old one signed or opened. Needs only openssl and a POSIX shell.
# The two Mattermost tokens come from Mattermost; write them yourself (see deploy/README).
set -eu

dir=${1:-"$(dirname "$0")/secrets"}
umask 077
mkdir -p "$dir"
chmod 700 "$dir"

b64url() { base64 | tr -d '\n=' | tr '/+' '_-'; }

# write NAME: the value on stdin becomes the file NAME, unless it exists.
write() {
  if [ -e "$dir/$1" ]; then
    echo "kept    $dir/$1"
    cat >/dev/null
    return
  fi
  cat >"$dir/$1.tmp"
  mv "$dir/$1.tmp" "$dir/$1"
  echo "created $dir/$1"
}

openssl rand -hex 24 | write postgres_password
# The URL the bot replicas use: compose's postgres service, database and user claw.
printf 'postgres://claw:%s@postgres:5432/claw\n' "$(cat "$dir/postgres_password")" | write database_url
openssl rand -hex 32 | write admin_token
openssl rand -hex 32 | write metrics_token
# 32 random bytes, unpadded base64url: what ACTION_SECRET_FILE holds (serve would make the same).
printf '%s\n' "$(openssl rand 32 | b64url)" | write action_secret
jwk() {
  # PKCS#8 and SPKI DER of an Ed25519 key end with its 32-byte private and public key.
  pem=$(openssl genpkey -algorithm ed25519)
  d=$(printf '%s\n' "$pem" | openssl pkey -outform DER | tail -c 32 | b64url)
  x=$(printf '%s\n' "$pem" | openssl pkey -pubout -outform DER | tail -c 32 | b64url)
  printf '{"kty":"OKP","crv":"Ed25519","x":"%s","d":"%s"}\n' "$x" "$d"
}
if [ -e "$dir/signing_key_jwk" ]; then echo "kept    $dir/signing_key_jwk"; else jwk | write signing_key_jwk; fi

for name in mattermost_token mattermost_command_token; do
  [ -e "$dir/$name" ] || echo "missing $dir/$name: write it from Mattermost (cat > $dir/$name, paste, Ctrl-D)"
done
