using NetTopologySuite.Geometries;

namespace RsCapRet.Storage;

/// <summary>What identifies a model in the catalogue (see migrations/0002).</summary>
public sealed record ModelIdentity(string Name, string Version, string LlmBackbone, string VisionBackbone,
    string HeadsSha256, int SharedDim = 256);

/// <summary>A scene file as the catalogue knows it before ingestion.</summary>
public sealed record SceneFile(string Path, string ContentSha256, long SizeBytes);

/// <summary>
/// A worker's claim on a scene: the token changes with every claim, so a taken-over claim can no longer write;
/// <see cref="Lease"/> is how far each renewal pushes the claim's expiry.
/// </summary>
public sealed record SceneClaim(long SceneId, Guid Token, TimeSpan Lease);

/// <summary>This worker's lease on the scene expired and another worker claimed it; nothing of this run was committed.</summary>
public sealed class SceneLeaseLostException(long sceneId)
    : Exception($"Scene {sceneId} was claimed by another worker after this worker's lease expired; this run's tiles were rolled back.");

/// <summary>Scene-level facts found while ingesting, written together with the tiles.</summary>
public sealed record SceneMetadata(int WidthPx, int HeightPx, int BandCount, string? CrsWkt, int? CrsEpsg,
    Polygon? Footprint, DateTimeOffset? AcquiredAt, double? TileGsd = null, string? Warning = null,
    string? AcquiredSource = null, string? StacCollection = null);

/// <summary>One tile ready to store: grid position, pixel window, footprints, caption and 256-d vector.</summary>
public sealed record TileRecord(int GridRow, int GridCol, int PxX, int PxY, int PxWidth, int PxHeight,
    Polygon? Footprint, Polygon FootprintNative, float NodataFraction, string? Caption, float[] Embedding);

public enum SceneStatus { Pending, Ingesting, Done, Empty, Failed }

public sealed record SceneRow(long Id, string Path, string ContentSha256, int ModelId, SceneStatus Status,
    string? Error, int TileCount, int SkippedTiles);

/// <summary>A retrieval hit: tile, its scene, cosine distance (0 = same direction) and what was stored.</summary>
public sealed record TileHit(long TileId, long SceneId, string ScenePath, int GridRow, int GridCol,
    int PxX, int PxY, int PxWidth, int PxHeight, Polygon? Footprint, string? Caption, double Distance,
    DateTimeOffset? AcquiredAt);

/// <summary>
/// Optional search filters. <see cref="Area"/> and <see cref="Near"/> are EPSG:4326 geometries (lon/lat);
/// <see cref="Exact"/> ranks every filtered row without the ANN index (for validation).
/// </summary>
public sealed record SearchFilter(Geometry? Area = null, Point? Near = null, double? RadiusMetres = null,
    DateTimeOffset? AcquiredAfter = null, DateTimeOffset? AcquiredBefore = null, int? ModelId = null,
    long? SceneId = null, bool Exact = false);
