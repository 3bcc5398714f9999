using RsCapRet.Storage;

namespace RsCapRet.Queries;

/// <summary>
/// Change pairs with, under a toward text, whether each pair's after tile shows what the text asks for (issue 29):
/// the calibrated relevance of the after tile to the text (<see cref="RelevanceCalibration"/>, as search's
/// <c>relevance</c>). The pairs rank by movement toward the text (gain), which has no absolute scale: the top pair
/// of an area where nothing was built still moved most toward "new buildings"; its after relevance says whether it
/// shows buildings at all.
/// </summary>
public sealed record RankedChanges(IReadOnlyList<TileChange> Changes, IReadOnlyList<string> Notes, string? Toward,
    IReadOnlyList<double?> AfterRelevance, string? RelevanceNote)
{
    /// <summary>Pairs compared without a toward text: no relevance, nothing to match.</summary>
    public static RankedChanges Plain(ChangeResult result) =>
        new(result.Changes, result.Notes, null, result.Changes.Select(_ => (double?)null).ToList(), null);

    /// <summary>
    /// The pairs of a toward query with their after tiles' relevance from the calibration of
    /// <paramref name="modelDirectory"/> (the model that embedded the text), or null with the reason when it has none.
    /// </summary>
    public static RankedChanges Score(ChangeResult result, string toward, float[] towardVector, string? modelDirectory)
    {
        var (calibration, note) = RelevanceCalibration.LoadOrExplain(modelDirectory);
        return Score(result, toward, towardVector, calibration, note);
    }

    public static RankedChanges Score(ChangeResult result, string toward, float[] towardVector, RelevanceCalibration? calibration, string? note = null)
    {
        if (calibration is null)
            return new(result.Changes, result.Notes, toward, result.Changes.Select(_ => (double?)null).ToList(), note ?? RelevanceCalibration.MissingNote);
        var of = calibration.ForQuery(towardVector);
        var relevance = result.Changes.Select(c => c.AfterTowardDistance is { } d ? (double?)Math.Round(of(d), 4) : null).ToList();
        return new(result.Changes, result.Notes, toward, relevance, null);
    }

    /// <summary>Whether pair <paramref name="i"/>'s after tile matches the toward text (relevance ≥ 0.5); null without relevance.</summary>
    public bool? Matches(int i) => AfterRelevance[i] is { } r ? r >= RelevanceCalibration.GoodMatch : null;

    /// <summary>Whether any pair's after tile matches; null without a toward text, relevance or pairs.</summary>
    public bool? AnyMatch => Changes.Count == 0 || AfterRelevance.All(r => r is null) ? null : AfterRelevance.Any(r => r >= RelevanceCalibration.GoodMatch);

    /// <summary>The line said when no pair's after tile matches the toward text (the CLI's first line, the page's status).</summary>
    public string? NoMatchLine => AnyMatch == false
        ? $"no pair's after tile matches \"{Toward}\": none reaches relevance {RelevanceCalibration.GoodMatch.ToString("0.0", System.Globalization.CultureInfo.InvariantCulture)} " +
          "(the pairs listed moved most toward it, but none shows it)"
        : null;
}
