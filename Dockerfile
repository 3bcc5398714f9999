# rscapret worker / host image. TORCH_BACKEND=cpu (default) or cuda (NVIDIA GPU machines).
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
ARG TORCH_BACKEND=cpu
WORKDIR /src
COPY . .
RUN dotnet publish src/RsCapRet.Cli -c Release -o /out -p:RsCapRetTorchBackend=${TORCH_BACKEND}

FROM mcr.microsoft.com/dotnet/aspnet:10.0
# The image's Debian has a libstdc++ with GLIBCXX_3.4.32, so TorchSharp needs no compat patch here.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gdal-bin \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /out .
COPY migrations ./migrations
ENTRYPOINT ["dotnet", "rscapret.dll"]
