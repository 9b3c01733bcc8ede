# A small, non-root image of hasses with the defaults of the C daemon's
# image (hyperprog/hassesdaemon): SSE on 8080 at /sse, control port on 8085.
#
# The Dockerfile copies a prebuilt static binary (as release tools do), so
# the build needs no registry and no base image:
#
#   CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o hasses ./cmd/hasses
#   docker build -t hasses .
#   docker run --rm -p 8080:8080 -p 127.0.0.1:8085:8085 hasses
#
# Arguments after the image name are hasses options; they are appended to
# the defaults below and override them (-p=9090, -debug, -ctl-secret=...).
# Everything, including the environment variables, is in docs/docker.md.
FROM scratch

COPY hasses /hasses

# No /etc/passwd in a scratch image: a numeric user (nobody:nogroup).
USER 65534:65534

# 8080: SSE streams. 8085: control port. Inside the container the control
# port listens on all interfaces so that a published port reaches it; the
# default publisher policy admits private-network addresses only, and
# -ctl-secret (or HASSES_CTL_SECRET) opens it to others with a secret.
EXPOSE 8080 8085

# docker stop sends SIGTERM: hasses ends the streams within -drain (5 s),
# inside docker's default 10 s grace period.
STOPSIGNAL SIGTERM

ENTRYPOINT ["/hasses", "-nodaemon", "-p=8080", "-cp=8085", "-murl=/sse"]
