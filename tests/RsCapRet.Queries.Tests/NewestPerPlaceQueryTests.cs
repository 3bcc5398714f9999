using RsCapRet.Queries;

namespace RsCapRet.Queries.Tests;

/// <summary>Issue 29, the map: the search's scene, latest and as_of parameters (one acquisition per place) as parsed.</summary>
public class NewestPerPlaceQueryTests
{
    [Fact]
    public void LatestAndAsOfAskForOneAcquisitionPerPlaceAndAsOfBoundsTheDates()
    {
        var plain = SearchQuery.Parse("farm", null, null, null, null, null);
        Assert.False(plain.Filter.NewestPerPlace);   // the API's and the CLI's default: every acquisition
        Assert.Null(plain.Filter.SceneId);
        Assert.True(SearchQuery.Parse("farm", null, null, null, null, null, latest: "true").Filter.NewestPerPlace);
        Assert.False(SearchQuery.Parse("farm", null, null, null, null, null, latest: "false").Filter.NewestPerPlace);

        // as_of is the whole day: acquisitions before the next day's start, and it implies latest.
        var asOf = SearchQuery.Parse("farm", null, null, null, null, null, asOf: "2019-12-31");
        Assert.True(asOf.Filter.NewestPerPlace);
        Assert.Equal(new DateTimeOffset(2020, 1, 1, 0, 0, 0, TimeSpan.Zero), asOf.Filter.AcquiredBefore);
        // The earlier of before and as_of bounds the search.
        Assert.Equal(new DateTimeOffset(2019, 6, 1, 0, 0, 0, TimeSpan.Zero),
            SearchQuery.Parse("farm", null, null, null, null, "2019-06-01", asOf: "2019-12-31").Filter.AcquiredBefore);
        Assert.Equal(new DateTimeOffset(2019, 1, 2, 0, 0, 0, TimeSpan.Zero),
            SearchQuery.Parse("farm", null, null, null, null, "2019-06-01", asOf: "2019-01-01").Filter.AcquiredBefore);
        Assert.Contains("as_of", Assert.Throws<FormatException>(() => SearchQuery.Parse("farm", null, null, null, "2020-01-01", null, asOf: "2019-01-01")).Message);

        Assert.Equal(12L, SearchQuery.Parse("farm", null, null, null, null, null, scene: "12").Filter.SceneId);
        foreach (var (latest, asOfText, scene) in new (string?, string?, string?)[] { ("maybe", null, null), (null, "soon", null), (null, null, "0"), (null, null, "x") })
            Assert.Throws<FormatException>(() => SearchQuery.Parse("farm", null, null, null, null, null, latest: latest, asOf: asOfText, scene: scene));
    }
}
