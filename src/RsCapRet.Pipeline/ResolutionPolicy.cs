using RsCapRet.Inference;
using RsCapRet.Model;
using RsCapRet.Raster;

namespace RsCapRet.Pipeline;

/// <summary>What resolution a scene is tiled at, why, and whether the model can be trusted there.</summary>
public sealed record ResolutionPlan(double? TargetGsd, string Note, string? Warning)
{
    /// <summary>The tiles' resolution lies far outside the model's training range (the warning says how far).</summary>
    public bool OutOfRange => Warning is not null;
}

/// <summary>
/// How a scene is tiled for a model: the requested options with the model's input size as tile size and the target
/// GSD of <see cref="ResolutionPolicy"/>. `ingest` tiles by it and `inspect` shows it, so the two cannot disagree.
/// </summary>
public sealed record TilingPlan(TilingOptions Tiling, ResolutionPlan Resolution)
{
    public static TilingPlan For(string path, TilingOptions requested, ModelTiling model)
    {
        var plan = ResolutionPolicy.PlanFor(path, requested.TargetGsd, model.Resolution);
        return new TilingPlan(requested with { TileSize = model.InputSize, TargetGsd = plan.TargetGsd }, plan);
    }
}

/// <summary>
/// Meets the model at the ground sample distance it was trained on. Without --gsd: a scene finer than the training
/// range is resampled to the model's GSD; a scene inside the range keeps its own; a coarser one keeps its own too
/// (upsampling adds no detail) and is warned about when it is more than twice the range's upper end.
/// </summary>
public static class ResolutionPolicy
{
    /// <summary>How far past the training range's coarse end a scene may be before it is warned about.</summary>
    public const double FarCoarserFactor = 2.0;

    /// <summary>The plan for a scene file: its native pixel size in metres against the model's training range.</summary>
    public static ResolutionPlan PlanFor(string path, double? requested, TrainingResolution? model)
    {
        using var ds = RasterDataset.Open(path);
        var metres = ds.MetresPerPixel;
        var plan = Plan(metres ?? ds.PixelSize, metres is not null, requested, model);
        // Degrees become metres through the ellipsoid at the scene's centre: say so, as GDAL's tools would not.
        return ds.Crs is { IsGeographic: true } && metres is not null
            ? plan with { Note = plan.Note + "; metres measured from the CRS's degrees at the scene's centre latitude" }
            : plan;
    }

    /// <param name="nativeGsd">the scene's pixel size in metres (<see cref="RasterDataset.MetresPerPixel"/>), else in the file's units</param>
    /// <param name="metres">whether it is in metres; a file whose CRS gives no way to metres cannot be compared</param>
    /// <param name="requested">--gsd, when given (metres where <paramref name="metres"/>)</param>
    public static ResolutionPlan Plan(double nativeGsd, bool metres, double? requested, TrainingResolution? model)
    {
        static string M(double v) => SceneDescription.Gsd(v);
        if (model is null)
            return new(requested, requested is { } r0 ? $"tiles at {M(r0)} units/px (--gsd)" : $"tiles at the native {M(nativeGsd)} units/px (the model records no training resolution)", null);
        var range = $"{M(model.Min)}–{M(model.Max)} m/px";
        if (!metres)
            return new(requested, $"tiles at {(requested is { } r1 ? M(r1) + " (--gsd)" : "the native " + M(nativeGsd))} units/px; the file gives its pixels no size in metres (no CRS, or units GDAL does not know), so the model's training range ({range}) cannot be compared", null);
        double? target = requested ?? (nativeGsd < model.Min ? model.Gsd : null);
        var tileGsd = target ?? nativeGsd;
        var note = requested is not null ? $"tiles at {M(tileGsd)} m/px (--gsd; the model was trained at {range})"
            : nativeGsd < model.Min ? $"resampled from the native {M(nativeGsd)} to {M(tileGsd)} m/px, the model's training resolution ({range}; --gsd overrides)"
            : nativeGsd <= model.Max ? $"tiles at the native {M(nativeGsd)} m/px, inside the model's training range ({range})"
            : $"tiles at the native {M(nativeGsd)} m/px, coarser than the model's training range ({range}); not upsampled";
        string? warning = null;
        if (tileGsd > model.Max * FarCoarserFactor)
            warning = $"{M(tileGsd)} m/px is far coarser than the model's training range ({range}): a tile covers {M(tileGsd / model.Gsd)}× the ground the model expects, so captions and search results on this scene are unreliable";
        else if (tileGsd < model.Min / FarCoarserFactor)
            warning = $"{M(tileGsd)} m/px is far finer than the model's training range ({range}): captions and search results on this scene are unreliable";
        return new(target, note, warning);
    }
}
