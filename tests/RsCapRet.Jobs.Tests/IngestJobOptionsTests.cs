using RsCapRet.Jobs;

namespace RsCapRet.Jobs.Tests;

/// <summary>A job's bands parameter is read by the same parser as the CLI's --bands, and a bad one says which parameter.</summary>
public sealed class IngestJobOptionsTests
{
    [Fact]
    public void Bands_are_parsed_and_a_bad_value_names_the_parameter()
    {
        Assert.Equal([4, 3, 2], new IngestJobOptions(Bands: "4, 3,2").ToTiling().Bands);
        var e = Assert.Throws<FormatException>(() => new IngestJobOptions(Bands: "4,x,2").ToTiling());
        Assert.Equal("bands: must be three band numbers such as 4,3,2, got '4,x,2'", e.Message);
    }
}
