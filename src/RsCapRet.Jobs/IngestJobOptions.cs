using RsCapRet.Pipeline;
using RsCapRet.Raster;

namespace RsCapRet.Jobs;

/// <summary>How to tile scenes in jobs; the JSON-friendly subset of <see cref="TilingOptions"/>.</summary>
public sealed record IngestJobOptions(string? Bands = null, double? Gsd = null, int Overlap = 0, double MaxNodata = 0.5, bool NoCrs = false, bool Captions = true,
    string? StacItem = null, bool SkipOutOfRange = false, bool Force = false, bool FollowLinksOutside = false, bool Cells = false)
{
    /// <summary>The options a stored plan asks for (to retry a failed version as it was made).</summary>
    public static IngestJobOptions FromPlan(IngestPlan plan) =>
        new(plan.Bands, plan.Gsd, plan.Overlap, plan.MaxNodata, plan.NoCrs, plan.Captions, Cells: plan.Cells);

    public IngestOptions ToIngest() => new() { Tiling = ToTiling(), Caption = Captions, SkipOutOfRange = SkipOutOfRange, Force = Force, Cells = Cells };

    public TilingOptions ToTiling() => new()
    {
        Bands = Bands is null ? null : BandSelection.Parse(Bands, "bands"),
        TargetGsd = Gsd, Overlap = Overlap, MaxNodataFraction = MaxNodata, AllowMissingCrs = NoCrs, StacItem = StacItem,
    };
}
