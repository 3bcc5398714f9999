# The rscapret image: the CLI (worker, serve and every other command) with GDAL, libtorch and the default model.
#   docker build -t rscapret:cpu .                                   TorchSharp-cpu (default)
#   docker build -t rscapret:cuda --build-arg TORCH_BACKEND=cuda .   TorchSharp-cuda-linux, for NVIDIA GPU machines
# docker-compose.yml builds and runs it (docs/docker.md). Without a Docker engine,
# tests/RsCapRet.Cli.Tests/DeploymentFilesTests.cs is the check: ENTRYPOINT/CMD and the smoke runs below go through the
# real CLI parser, and the paths the services use must come from the COPY lines here or from their volumes.
# linux/amd64 only: TorchSharp ships linux-x64 natives, and Directory.Build.props builds for linux-x64.
FROM --platform=linux/amd64 mcr.microsoft.com/dotnet/sdk:10.0-noble AS build
ARG TORCH_BACKEND=cpu
WORKDIR /src
COPY . .
RUN dotnet publish src/RsCapRet.Cli -c Release -o /out -p:RsCapRetTorchBackend=${TORCH_BACKEND}

# Ubuntu 24.04 (the .NET 10 images have no Debian variant).
FROM --platform=linux/amd64 mcr.microsoft.com/dotnet/aspnet:10.0-noble
# Native libraries the CLI loads at run time:
# - GDAL: src/RsCapRet.Raster/Gdal/GdalNative.cs binds the system libgdal (libgdal.so.32/34/36...). gdal-bin brings
#   Ubuntu 24.04's libgdal34t64 (libgdal.so.34, GDAL 3.8) with its GeoTIFF/COG and JPEG2000 (OpenJPEG) drivers and
#   PROJ (libproj25 + proj-data: CRS to WGS84 footprints), and gdal_create for the smoke run below.
# - libtorch: TorchSharp's natives come with the publish output (libLibTorchSharp.so, libtorch.so, libtorch_cpu.so,
#   libc10.so, libgomp; the cuda build adds libtorch_cuda.so and the CUDA/cuDNN runtime libraries of the
#   libtorch-cuda packages, the driver's libcuda.so.1 comes from the NVIDIA container toolkit). libLibTorchSharp.so
#   needs GLIBCXX_3.4.32, which Ubuntu 24.04's libstdc++6 has, so scripts/compat's Debian 12 patch is not needed here.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gdal-bin \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /out .
# Migrations and the map page's web assets also travel inside the assemblies; this copy is for psql and operators.
COPY migrations ./migrations
# The recurring jobs `serve --jobs /app/jobs` registers: an hourly scan of the archive mounted at /archive.
COPY docker/jobs ./jobs
# The embedded default model (rscapret.json, tokenizer.model, heads, llm/ and vision/ backbone folders): commands
# without --model or RSCAPRET_MODEL use models/default beside the binary. docker-compose.yml mounts the checkout's
# models/ over /app/models (the same default/, plus backbones/ and your own model folders).
COPY models/default ./models/default
# `backbone:NAME` references resolve here (imported on the host by scripts/bootstrap.sh, then mounted).
ENV RSCAPRET_BACKBONES=/app/models/backbones
# Smoke run: GDAL reads a raster, libtorch captions it with the default model. An image that cannot do either does not build.
RUN gdal_create -q -of GTiff -outsize 224 224 -bands 3 -burn 90 -burn 120 -burn 60 -a_srs EPSG:32610 \
      -a_ullr 500000 4200000 500067.2 4199932.8 /tmp/smoke.tif \
 && dotnet rscapret.dll inspect /tmp/smoke.tif \
 && dotnet rscapret.dll caption /tmp/smoke.tif --device cpu \
 && rm /tmp/smoke.tif
# The non-root user the .NET images define (uid 1654): mounted models and archives must be readable by it.
USER $APP_UID
ENTRYPOINT ["dotnet", "rscapret.dll"]
CMD ["--help"]
