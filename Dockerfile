# Image for `docker compose up`: digitslite with the CPU build of torch. For a GPU host, install
# the CUDA build of torch==2.13.0 in place of the CPU wheel and enable the reservation in
# docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
COPY . /app
RUN pip install --no-cache-dir torch==2.13.0 && pip install --no-cache-dir .
ENV DIGITSLITE_JOBS_DIR=/data/jobs DIGITSLITE_DATA_ROOTS=/data/datasets
EXPOSE 5000
CMD ["digitslite", "serve", "--host", "0.0.0.0", "--port", "5000"]
