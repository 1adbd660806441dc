# Kafka (KRaft) and InfluxDB 1.8 for docker-compose.local.yml, on machines that cannot pull the
# official images: the project's own local services (`gar dev serve`) in the app image, with
# the Kafka jars (Maven Central) and the influxd (built with Go) that scripts/bootstrap.sh put
# in its cache. The build context is made by streams/devenv/docker/images.py.
ARG APP_IMAGE=gar-streams:local
FROM ${APP_IMAGE}
ARG KAFKA_VERSION
ARG INFLUXDB_VERSION
USER root
COPY kafka-libs /opt/gar-cache/kafka-${KAFKA_VERSION}/libs
COPY influxd /opt/gar-cache/influxdb-${INFLUXDB_VERSION}/bin/influxd
# The state dirs are the compose volumes' mount points, owned by gar so a fresh volume is too.
RUN echo "${KAFKA_VERSION}" > /opt/gar-cache/kafka-${KAFKA_VERSION}/libs/.complete \
    && echo "${INFLUXDB_VERSION}" > /opt/gar-cache/influxdb-${INFLUXDB_VERSION}/.complete \
    && mkdir -p /var/lib/kafka/data /var/lib/influxdb2 \
    && chown gar /var/lib/kafka/data /var/lib/influxdb2
ENV GAR_DEV__CACHE_DIR=/opt/gar-cache \
    GAR_DEV__KAFKA_VERSION=${KAFKA_VERSION} \
    GAR_DEV__INFLUXDB_VERSION=${INFLUXDB_VERSION}
USER gar
