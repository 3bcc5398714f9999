using NetTopologySuite.Geometries;
using RsCapRet.Core;

namespace RsCapRet.Storage;

/// <summary>What identifies a model in the catalogue (see migrations/0002).</summary>
public sealed record ModelIdentity(string Name, string Version, string LlmBackbone, string VisionBackbone,
    string HeadsSha256, int SharedDim = SharedSpace.Dimensions);

/// <summary>A scene file as the catalogue knows it before ingestion.</summary>
public sealed record SceneFile(string Path, string ContentSha256, long SizeBytes);

/// <summary>
/// A worker's claim on a scene: the token changes with every claim, so a taken-over claim can no longer write;
/// <see cref="Lease"/> is how far each renewal pushes the claim's expiry.
/// </summary>
public sealed record SceneClaim(long SceneId, Guid Token, TimeSpan Lease)
{
    /// <summary>The archive path the version is ingested for: completing it makes the version current there.</summary>
    public string? Path { get; init; }
    public int ModelId { get; init; }
    /// <summary>Whose claim this one replaced (a dead process on this machine, or a lapsed lease); null for a free scene.</summary>
    public string? TakenOverFrom { get; init; }
}

/// <summary>An ingest plan as the catalogue keeps it: the canonical text versions are compared by, and its JSON.</summary>
public sealed record ScenePlan(string Key, string Json)
{
    /// <summary>For callers that state no plan (storage-level tools and tests): one fixed key.</summary>
    public static readonly ScenePlan Unstated = new("unstated", "{}");
}

/// <summary>This worker's lease on the scene expired and another worker claimed it; nothing of this run was committed.</summary>
public sealed class SceneLeaseLostException(long sceneId)
    : Exception($"Scene {sceneId} was claimed by another worker after this worker's lease expired; this run's tiles were rolled back.");

/// <summary>Scene-level facts found while ingesting, written together with the tiles.</summary>
public sealed record SceneMetadata(int WidthPx, int HeightPx, int BandCount, string? CrsWkt, int? CrsEpsg,
    Polygon? Footprint, DateTimeOffset? AcquiredAt, double? TileGsd = null, string? Warning = null,
    string? AcquiredSource = null, string? StacCollection = null, double? Coverage = null, bool OutOfRange = false);

/// <summary>One tile ready to store: grid position, pixel window, footprints, caption and 256-d vector.</summary>
public sealed record TileRecord(int GridRow, int GridCol, int PxX, int PxY, int PxWidth, int PxHeight,
    Polygon? Footprint, Polygon FootprintNative, float NodataFraction, string? Caption, float[] Embedding)
{
    /// <summary>The tile's cell vectors, kept in tile_cells when set (ingest --cells).</summary>
    public CellVectors? Cells { get; init; }
}

/// <summary>
/// A version's state. Done and Empty are complete and shown by a current path (searchable when done); Superseded
/// and Removed are complete versions no current path shows (a newer version replaced them; their path left the archive).
/// </summary>
public enum SceneStatus { Pending, Ingesting, Done, Empty, Failed, Superseded, Removed }

public sealed record SceneRow(long Id, string Path, string ContentSha256, int ModelId, SceneStatus Status,
    string? Error, int TileCount, int SkippedTiles)
{
    public string PlanKey { get; init; } = "";
    public int Revision { get; init; } = 1;
    public long SizeBytes { get; init; }
    /// <summary>Complete (tiles stored or none to store), whether or not a path shows it now.</summary>
    public bool IsComplete => Status is SceneStatus.Done or SceneStatus.Empty or SceneStatus.Superseded or SceneStatus.Removed;
}

/// <summary>A retrieval hit: tile, its scene, cosine distance (0 = same direction) and what was stored.</summary>
public sealed record TileHit(long TileId, long SceneId, string ScenePath, int GridRow, int GridCol,
    int PxX, int PxY, int PxWidth, int PxHeight, Polygon? Footprint, string? Caption, double Distance,
    DateTimeOffset? AcquiredAt, bool OutOfRange = false);

/// <summary>
/// Optional search filters. <see cref="Area"/> and <see cref="Near"/> are EPSG:4326 geometries (lon/lat);
/// <see cref="Exact"/> ranks every filtered row without the ANN index (for validation); <see cref="NewestPerPlace"/>
/// keeps one acquisition per place, the newest the other filters let through (rscapret_search_newest, migrations/0022).
/// </summary>
public sealed record SearchFilter(Geometry? Area = null, Point? Near = null, double? RadiusMetres = null,
    DateTimeOffset? AcquiredAfter = null, DateTimeOffset? AcquiredBefore = null, int? ModelId = null,
    long? SceneId = null, bool Exact = false, bool NewestPerPlace = false);
