using RsCapRet.Raster;

namespace RsCapRet.Raster.Tests;

/// <summary>The one parser of "R,G,B" band numbers (the CLI's --bands, the jobs' bands): values kept, errors naming the parameter.</summary>
public sealed class BandSelectionTests
{
    [Theory]
    [InlineData("4,3,2", new[] { 4, 3, 2 })]
    [InlineData(" 1 , 2,3 ", new[] { 1, 2, 3 })]
    public void Three_positive_band_numbers_are_read(string text, int[] expected) =>
        Assert.Equal(expected, BandSelection.Parse(text, "--bands"));

    [Theory]
    [InlineData("4,3")]
    [InlineData("4,3,2,1")]
    [InlineData("4,x,2")]
    [InlineData("0,1,2")]
    [InlineData("-1,2,3")]
    [InlineData("")]
    public void Anything_else_is_an_error_naming_the_parameter_and_the_value(string text)
    {
        Assert.False(BandSelection.TryParse(text, out _));
        var e = Assert.Throws<FormatException>(() => BandSelection.Parse(text, "bands"));
        Assert.Equal($"bands: must be three band numbers such as 4,3,2, got '{text}'", e.Message);
    }
}
