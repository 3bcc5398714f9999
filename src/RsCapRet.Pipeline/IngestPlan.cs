using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using RsCapRet.Raster;
using RsCapRet.Storage;

namespace RsCapRet.Pipeline;

/// <summary>
/// What, besides the file's bytes and the model, decides a scene's tiles: the options as requested (not what the
/// resolution policy makes of them, which depends on the raster) and the grid layout. Together with the content and
/// the model it identifies a version: the same bytes ingested with another plan are another version.
/// </summary>
public sealed record IngestPlan(
    [property: JsonPropertyName("grid")] string Grid,
    [property: JsonPropertyName("tile_size")] int TileSize,
    [property: JsonPropertyName("gsd")] double? Gsd,
    [property: JsonPropertyName("bands")] string? Bands,
    [property: JsonPropertyName("overlap")] int Overlap,
    [property: JsonPropertyName("stretch")] string Stretch,
    [property: JsonPropertyName("max_nodata")] double MaxNodata,
    [property: JsonPropertyName("captions")] bool Captions,
    [property: JsonPropertyName("no_crs")] bool NoCrs,
    [property: JsonPropertyName("cells")] bool Cells = false)
{
    /// <summary>
    /// The grid layout of this version of the tiler: last column and row flush with the raster's edges, small scenes
    /// padded. A plan made before it ('legacy' in the catalogue) lost edge strips, so it never equals a current plan.
    /// </summary>
    public const string CurrentGrid = "flush-1";

    public static IngestPlan For(TilingOptions tiling, int tileSize, bool captions) => new(
        CurrentGrid, tileSize, tiling.TargetGsd, tiling.Bands is { } b ? string.Join(",", b) : null, tiling.Overlap,
        tiling.Stretch.ToString().ToLowerInvariant(), tiling.MaxNodataFraction, captions, tiling.AllowMissingCrs);

    /// <summary>The canonical text plans are compared by (invariant culture, fixed order).</summary>
    public string Key => string.Create(CultureInfo.InvariantCulture,
        $"grid={Grid};tile={TileSize};gsd={(Gsd is { } g ? g.ToString("R", CultureInfo.InvariantCulture) : "auto")};bands={Bands ?? "auto"};" +
        $"overlap={Overlap};stretch={Stretch};max_nodata={MaxNodata:R};captions={(Captions ? 1 : 0)};no_crs={(NoCrs ? 1 : 0)}") +
        (Cells ? ";cells=1" : "");   // absent when off: the keys of versions ingested before --cells stay the same

    public string ToJson() => JsonSerializer.Serialize(this);

    /// <summary>A plan read back from the catalogue (to retry a failed version as it was asked for); null when unreadable.</summary>
    public static IngestPlan? FromJson(string? json)
    {
        if (string.IsNullOrWhiteSpace(json)) return null;
        try { return JsonSerializer.Deserialize<IngestPlan>(json); }
        catch (JsonException) { return null; }
    }

    public ScenePlan ToScenePlan() => new(Key, ToJson());
}
