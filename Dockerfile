# glimpse: a small runtime image with the release binary, running as a non-root user.
#   docker build -t glimpse .
#   docker run -p 8080:8080 -v glimpse-models:/models glimpse            # default model
#   docker run -p 8080:8080 -v $PWD:/models glimpse -m /models/qwen3-vl-2b.gguf
# The first start downloads and converts the model into the /models volume (minutes);
# /health answers 503 until the model is loaded.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock models.toml ./
COPY gguf gguf
COPY convert convert
COPY third_party third_party
COPY src src
COPY webui webui
COPY benches benches
RUN cargo build --release --locked && strip target/release/glimpse

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /models --shell /usr/sbin/nologin glimpse \
    && mkdir -p /models \
    && chown glimpse:glimpse /models
COPY --from=build /src/target/release/glimpse /usr/local/bin/glimpse
USER glimpse
ENV HF_HOME=/models/huggingface \
    GLIMPSE_CACHE=/models/glimpse
VOLUME /models
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30m --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/health || exit 1
# SIGTERM drains: answers in flight finish (up to --shutdown-timeout), then exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["glimpse", "serve", "--host", "0.0.0.0", "--port", "8080"]
CMD ["-m", "qwen3-vl-2b:q4_k"]
