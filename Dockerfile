# callrelay container image: a static binary on distroless (non-root, no shell).
#   docker build -t callrelay .
#   docker run --rm -p 8080:8080 -e DATABASE_URL=... -e TWILIO_AUTH_TOKEN=... callrelay
# Migrations are embedded in the binary and applied at start-up (or: docker run ... callrelay migrate).

FROM golang:1.26-bookworm AS build
WORKDIR /src

# Dependencies first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download && go mod verify

COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/callrelay ./cmd/callrelay

# static-debian12 carries CA certificates (HTTPS to api.twilio.com, SMTP over TLS) and tzdata.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/callrelay /callrelay
# The nonroot user's home: relative paths (CALLRELAY_MAIL_DIR=.data/mail) land here, writable.
WORKDIR /home/nonroot
# The spool keeps callbacks that arrive while PostgreSQL is down until they are replayed: it
# must outlive the container. Mount a volume of its own per replica here.
ENV CALLRELAY_ADDR=:8080 CALLRELAY_SPOOL_DIR=/home/nonroot/spool
VOLUME ["/home/nonroot/spool"]
EXPOSE 8080
USER nonroot:nonroot
ENTRYPOINT ["/callrelay"]
CMD ["serve"]
